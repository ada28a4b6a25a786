//! Sizing policy on described machines, environment overrides, bad input, detection here.

use onebox::hardware::{GpuInfo, GpuSource, Hardware};
use onebox::{Cluster, Error, Plan, Settings};

fn machine(cores: usize, memory_gib: u64, gpus: usize, cc: (u32, u32)) -> Hardware {
    Hardware {
        logical_cores: cores,
        physical_cores: cores.div_ceil(2),
        cpu_budget: cores,
        cpu_brand: "Described CPU".into(),
        memory_total: memory_gib << 30,
        memory_available: (memory_gib << 30) / 10 * 9,
        memory_cgroup_limited: false,
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                name: "Described GPU".into(),
                uuid: format!("GPU-{i:08x}-0000-0000-0000-000000000000"),
                memory_total: 16 << 30,
                memory_free: Some(15 << 30),
                compute_capability: cc,
                pci_bus_id: format!("00000000:{i:02X}:00.0"),
            })
            .collect(),
        gpu_source: if gpus > 0 {
            GpuSource::Nvml
        } else {
            GpuSource::None
        },
    }
}

#[test]
fn policy_scales_from_a_laptop_to_the_largest_machine() {
    let small = Plan::new(&machine(2, 24, 0, (0, 0)), &Settings::default()).unwrap();
    assert_eq!(small.cpu_threads, 2);
    assert!(small.gpus.is_empty());
    let expect = ((24u64 << 30) / 10 * 9) as f64 * 0.8;
    assert!((small.memory_limit as f64 - expect).abs() < 1e6);

    let big = Plan::new(&machine(256, 4096, 8, (7, 0)), &Settings::default()).unwrap();
    assert_eq!(big.cpu_threads, 256);
    assert_eq!(big.gpus, (0..8).collect::<Vec<_>>());
    assert_eq!(big.streams_per_gpu, 2, "V100s get 2 streams");
    assert!(big.memory_limit > 2u64 << 40 && big.memory_limit < 4u64 << 40);
    assert_eq!(
        big.gpu_memory_limits,
        vec![(16u64 << 30) as f64 as u64 * 8 / 10; 8]
    );

    let hopper = Plan::new(&machine(16, 128, 1, (9, 0)), &Settings::default()).unwrap();
    assert_eq!(hopper.streams_per_gpu, 4);
}

#[test]
fn a_container_budget_sizes_the_pool_not_the_host() {
    let mut hw = machine(64, 256, 0, (0, 0));
    hw.cpu_budget = 4;
    assert_eq!(Plan::new(&hw, &Settings::default()).unwrap().cpu_threads, 4);
}

#[test]
fn environment_overrides_and_builder_precedence() {
    let env = |k: &str| match k {
        "ONEBOX_THREADS" => Some("3".to_string()),
        "ONEBOX_GPUS" => Some("1".to_string()),
        "ONEBOX_MEMORY_LIMIT" => Some("16GB".to_string()),
        "ONEBOX_STREAMS" => Some("3".to_string()),
        _ => None,
    };
    let from_env = Settings::from_lookup(env).unwrap();
    let plan = Plan::new(&machine(8, 64, 2, (8, 0)), &from_env).unwrap();
    assert_eq!(
        (plan.cpu_threads, plan.gpus.clone(), plan.streams_per_gpu),
        (3, vec![0], 3)
    );
    assert_eq!(plan.memory_limit, 16_000_000_000);

    let builder = Settings {
        threads: Some(5),
        ..Settings::default()
    };
    let merged = builder.or(from_env);
    assert_eq!(
        Plan::new(&machine(8, 64, 2, (8, 0)), &merged)
            .unwrap()
            .cpu_threads,
        5
    );
}

#[test]
fn memory_limits_in_every_unit() {
    let total = 100u64 << 30;
    let p = |s: &str| onebox::cluster::parse_memory(s, total).unwrap();
    assert_eq!(p("16GB"), 16_000_000_000);
    assert_eq!(p("16 GiB"), 16 << 30);
    assert_eq!(p("512MiB"), 512 << 20);
    assert_eq!(p("1e9"), 1_000_000_000);
    assert_eq!(p("4096"), 4096);
    assert_eq!(p("0.5"), total / 2);
    assert_eq!(p("25%"), total / 4);
}

#[test]
fn bad_settings_are_errors_that_name_the_value() {
    let hw = machine(4, 16, 1, (8, 0));
    let plan = |s: Settings| Plan::new(&hw, &s).unwrap_err().to_string();
    assert!(
        plan(Settings {
            threads: Some(0),
            ..Default::default()
        })
        .contains("threads")
    );
    let gpu = plan(Settings {
        gpu_indices: Some(vec![3]),
        ..Default::default()
    });
    assert!(gpu.contains("GPU 3") && gpu.contains("1 GPU"), "{gpu}");
    assert!(
        plan(Settings {
            gpu_count: Some(2),
            ..Default::default()
        })
        .contains("2 GPUs")
    );
    let mem = plan(Settings {
        memory_limit: Some("lots".into()),
        ..Default::default()
    });
    assert!(mem.contains("\"lots\""), "{mem}");
    assert!(
        plan(Settings {
            memory_limit: Some("12 parsecs".into()),
            ..Default::default()
        })
        .contains("unit")
    );

    let env_err =
        Settings::from_lookup(|k| (k == "ONEBOX_THREADS").then(|| "many".to_string())).unwrap_err();
    assert!(
        matches!(&env_err, Error::Config { what, value, .. } if what == "ONEBOX_THREADS" && value == "many")
    );
    assert!(Settings::from_lookup(|k| (k == "ONEBOX_GPUS").then(|| "two".to_string())).is_err());
    assert_eq!(
        Settings::from_lookup(|k| (k == "ONEBOX_GPUS").then(|| "none".to_string()))
            .unwrap()
            .gpu_count,
        Some(0)
    );
}

#[test]
fn the_builder_refuses_zero_threads_and_missing_gpus() {
    let e = Cluster::builder()
        .threads(0)
        .ignore_env()
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("at least 1 thread"), "{e}");
    let hw = machine(2, 8, 0, (0, 0));
    let e = Cluster::builder()
        .hardware(hw)
        .gpu_indices([0])
        .ignore_env()
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::NoGpu { available: 0, .. }), "{e}");
}

#[test]
fn detection_on_this_machine_is_sane() {
    let hw = Hardware::detect();
    assert!(hw.cpu_budget >= 1 && hw.cpu_budget <= hw.logical_cores);
    assert!(hw.memory_total > 0 && hw.memory_available <= hw.memory_total);
    assert_eq!(hw.gpus.is_empty(), hw.gpu_source == GpuSource::None);
}

#[test]
fn a_cluster_starts_with_the_planned_threads() {
    let c = Cluster::builder()
        .threads(3)
        .memory_limit("2GB")
        .ignore_env()
        .build()
        .unwrap();
    assert_eq!(c.threads(), 3);
    assert_eq!(c.plan().memory_limit, 2_000_000_000);
    let workers: std::collections::HashSet<_> = c
        .map(0..10_000u32, |_| {
            std::thread::current().name().map(str::to_owned)
        })
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        workers
            .iter()
            .all(|n| n.as_deref().is_some_and(|n| n.starts_with("onebox-cpu-")))
    );
}
