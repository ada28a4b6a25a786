//! What this machine has: cores, memory and GPUs.
//!
//! [`Hardware::detect`] reads the machine once, in a few milliseconds, and never panics or prints:
//!
//! - **CPUs**: logical and physical cores, the brand string, and the *CPU budget*: how many cores
//!   this process may really use (its affinity mask and cgroup CPU quota, as
//!   [`std::thread::available_parallelism`] reports them). A container given 2 cores of a 64-core
//!   host has a budget of 2.
//! - **Memory**: total and available bytes, lowered to the cgroup memory limit where one is set.
//! - **GPUs**: from NVML when `libnvidia-ml` loads, else from the CUDA driver (`libcuda`), else
//!   none. Each GPU has its name, UUID, memory, compute capability and PCI bus id. NVML numbers
//!   devices in PCI order and ignores `CUDA_VISIBLE_DEVICES`; CUDA honours it and may order
//!   devices differently. onebox applies `CUDA_VISIBLE_DEVICES` (indices or UUIDs, as CUDA
//!   does) to the NVML list and later matches CUDA devices to it by UUID.
//!
//! A `Hardware` is plain data: the sizing policy in [`crate::cluster`] is a pure function of it,
//! so it can be tested on described machines (256 cores, 4 TB, 8 GPUs) that we do not have.
//!
//! ```
//! let hw = onebox::Hardware::detect();
//! assert!(hw.cpu_budget >= 1);
//! println!("{hw}");
//! ```

use std::fmt;

use serde::Serialize;

/// A description of a machine: detected by [`Hardware::detect`] or written by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    /// Logical cores (hardware threads) of the machine.
    pub logical_cores: usize,
    /// Physical cores of the machine.
    pub physical_cores: usize,
    /// Cores this process may use: affinity mask and cgroup CPU quota applied.
    pub cpu_budget: usize,
    /// The CPU's brand string, e.g. `AMD EPYC 7B13`.
    pub cpu_brand: String,
    /// Total memory in bytes (the cgroup limit when lower than the machine's).
    pub memory_total: u64,
    /// Memory available to allocate now, in bytes (within the cgroup limit when one is set).
    pub memory_available: u64,
    /// True when a cgroup memory limit lowered the figures above.
    pub memory_cgroup_limited: bool,
    /// The GPUs this process may use, in `CUDA_VISIBLE_DEVICES` order.
    pub gpus: Vec<GpuInfo>,
    /// Where the GPU list came from.
    pub gpu_source: GpuSource,
}

/// One GPU as detected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuInfo {
    /// Its index among the GPUs visible to this process (what CUDA calls the device ordinal
    /// once `CUDA_VISIBLE_DEVICES` is applied).
    pub index: usize,
    /// The product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// The device UUID, `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub uuid: String,
    /// Device memory in bytes.
    pub memory_total: u64,
    /// Free device memory in bytes, when the source reports it (NVML does; the CUDA driver
    /// needs a context for it, so that path leaves it unknown).
    pub memory_free: Option<u64>,
    /// Compute capability (major, minor), e.g. (9, 0) for an H100, (7, 0) for a V100.
    pub compute_capability: (u32, u32),
    /// PCI bus id, e.g. `00000000:3B:00.0`.
    pub pci_bus_id: String,
}

/// Where the GPU list of a [`Hardware`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuSource {
    /// NVIDIA's management library, `libnvidia-ml`.
    Nvml,
    /// The CUDA driver, `libcuda`, when NVML was missing.
    CudaDriver,
    /// Neither library loaded, or neither found a device.
    None,
}

impl Hardware {
    /// Reads this machine. Never panics, never prints, and returns no GPUs when no driver loads.
    pub fn detect() -> Hardware {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

        let budget = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::nothing().with_ram())
                .with_cpu(CpuRefreshKind::nothing()),
        )
        .ok();
        let logical = sys.as_ref().map_or(budget, |s| s.cpus().len()).max(1);
        let physical = System::physical_core_count().unwrap_or(logical).max(1);
        let brand = sys
            .as_ref()
            .and_then(|s| s.cpus().first())
            .map(|c| c.brand().trim().to_string());
        let brand = brand.unwrap_or_default();

        let (mut total, mut available) = sys
            .as_ref()
            .map_or((0, 0), |s| (s.total_memory(), s.available_memory()));
        let mut limited = false;
        if let Some(cg) = sys.as_ref().and_then(|s| s.cgroup_limits())
            && cg.total_memory > 0
            && cg.total_memory < total
        {
            total = cg.total_memory;
            available = available.min(cg.free_memory);
            limited = true;
        }

        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let (gpus, gpu_source) = detect_gpus(visible.as_deref());
        Hardware {
            logical_cores: logical,
            physical_cores: physical,
            cpu_budget: budget,
            cpu_brand: brand,
            memory_total: total,
            memory_available: available,
            memory_cgroup_limited: limited,
            gpus,
            gpu_source,
        }
    }
}

fn detect_gpus(visible: Option<&str>) -> (Vec<GpuInfo>, GpuSource) {
    if let Some(all) = nvml_gpus() {
        let gpus = apply_visible_devices(all, visible);
        if !gpus.is_empty() {
            return (gpus, GpuSource::Nvml);
        }
        // NVML loaded but saw nothing usable: the CUDA driver cannot see more, say "none".
        return (Vec::new(), GpuSource::None);
    }
    match cuda_driver_gpus() {
        Some(gpus) if !gpus.is_empty() => (gpus, GpuSource::CudaDriver),
        _ => (Vec::new(), GpuSource::None),
    }
}

/// All GPUs NVML sees, in its (PCI) order, or `None` when NVML does not load.
fn nvml_gpus() -> Option<Vec<GpuInfo>> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let count = nvml.device_count().ok()?;
    let mut gpus = Vec::new();
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        let Ok(uuid) = dev.uuid() else { continue };
        let mem = dev.memory_info().ok();
        let cc = dev.cuda_compute_capability().ok();
        gpus.push(GpuInfo {
            index: i as usize,
            name: dev.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
            uuid,
            memory_total: mem.as_ref().map_or(0, |m| m.total),
            memory_free: mem.map(|m| m.free),
            compute_capability: cc.map_or((0, 0), |c| (c.major as u32, c.minor as u32)),
            pci_bus_id: dev.pci_info().map(|p| p.bus_id).unwrap_or_default(),
        });
    }
    Some(gpus)
}

/// All GPUs the CUDA driver sees (it applies `CUDA_VISIBLE_DEVICES` itself), or `None` when
/// `libcuda` is missing or does not initialise.
fn cuda_driver_gpus() -> Option<Vec<GpuInfo>> {
    use cudarc::driver::{result, sys};

    // SAFETY: `is_culib_present` only tries to open the library; it has no preconditions.
    // cudarc panics on the first driver call when the library is missing, so probe first.
    if !unsafe { sys::is_culib_present() } {
        return None;
    }
    result::init().ok()?;
    let count = result::device::get_count().ok()?;
    let mut gpus = Vec::new();
    for ordinal in 0..count {
        let Ok(dev) = result::device::get(ordinal) else {
            continue;
        };
        let Ok(uuid) = result::device::get_uuid(dev) else {
            continue;
        };
        let attr = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0) as u32;
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        let domain = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
        let bus = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
        let device = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
        gpus.push(GpuInfo {
            index: ordinal as usize,
            name: result::device::get_name(dev).unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
            uuid: format_cuda_uuid(&uuid.bytes.map(|b| b as u8)),
            // SAFETY: `dev` is a valid device handle returned by `device::get` above.
            memory_total: unsafe { result::device::total_mem(dev) }.unwrap_or(0) as u64,
            memory_free: None,
            compute_capability: (major, minor),
            pci_bus_id: format!("{domain:08X}:{bus:02X}:{device:02X}.0"),
        });
    }
    Some(gpus)
}

/// Formats CUDA's 16 raw UUID bytes the way NVML and `nvidia-smi -L` print them.
pub(crate) fn format_cuda_uuid(b: &[u8; 16]) -> String {
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Keeps the GPUs that `CUDA_VISIBLE_DEVICES` names, in its order, renumbered from 0.
///
/// CUDA's rules: unset means all; empty means none; entries are indices or UUIDs (a unique
/// prefix such as `GPU-8932f937` is enough; the `GPU-` may be left out); the list stops at the
/// first entry that names no device, and a device named twice also ends it.
pub fn apply_visible_devices(all: Vec<GpuInfo>, visible: Option<&str>) -> Vec<GpuInfo> {
    let Some(visible) = visible else {
        return renumber(all);
    };
    let mut chosen: Vec<GpuInfo> = Vec::new();
    for entry in visible.split(',').map(str::trim) {
        let found = if let Ok(i) = entry.parse::<usize>() {
            all.get(i)
        } else {
            let want = entry
                .strip_prefix("GPU-")
                .unwrap_or(entry)
                .to_ascii_lowercase();
            let mut hits = all.iter().filter(|g| {
                let have = g
                    .uuid
                    .strip_prefix("GPU-")
                    .unwrap_or(&g.uuid)
                    .to_ascii_lowercase();
                !want.is_empty() && have.starts_with(&want)
            });
            match (hits.next(), hits.next()) {
                (Some(g), None) => Some(g),
                _ => None,
            }
        };
        match found {
            Some(g) if !chosen.iter().any(|c| c.uuid == g.uuid) => chosen.push(g.clone()),
            _ => break,
        }
    }
    renumber(chosen)
}

fn renumber(mut gpus: Vec<GpuInfo>) -> Vec<GpuInfo> {
    for (i, g) in gpus.iter_mut().enumerate() {
        g.index = i;
    }
    gpus
}

/// Formats a byte count for people: `1.5 GiB`, `512 MiB`, `12 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Hardware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let brand = if self.cpu_brand.is_empty() {
            "unknown CPU"
        } else {
            &self.cpu_brand
        };
        writeln!(f, "CPU      {brand}")?;
        writeln!(
            f,
            "cores    {} logical, {} physical, {} usable by this process",
            self.logical_cores, self.physical_cores, self.cpu_budget
        )?;
        writeln!(
            f,
            "memory   {} total, {} available{}",
            format_bytes(self.memory_total),
            format_bytes(self.memory_available),
            if self.memory_cgroup_limited {
                " (cgroup limit)"
            } else {
                ""
            }
        )?;
        if self.gpus.is_empty() {
            return write!(f, "GPUs     none (no NVIDIA driver or no visible device)");
        }
        let source = match self.gpu_source {
            GpuSource::Nvml => "NVML",
            GpuSource::CudaDriver => "CUDA driver",
            GpuSource::None => "none",
        };
        write!(f, "GPUs     {} (from {source})", self.gpus.len())?;
        for g in &self.gpus {
            let free = g
                .memory_free
                .map(|b| format!(", {} free", format_bytes(b)))
                .unwrap_or_default();
            write!(
                f,
                "\n  [{}] {}  {}{free}  sm_{}{}  {}  {}",
                g.index,
                g.name,
                format_bytes(g.memory_total),
                g.compute_capability.0,
                g.compute_capability.1,
                g.pci_bus_id,
                g.uuid
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(i: usize, uuid: &str) -> GpuInfo {
        GpuInfo {
            index: i,
            name: format!("gpu{i}"),
            uuid: uuid.into(),
            memory_total: 16 << 30,
            memory_free: Some(15 << 30),
            compute_capability: (7, 0),
            pci_bus_id: format!("00000000:{i:02X}:00.0"),
        }
    }

    fn four() -> Vec<GpuInfo> {
        vec![
            gpu(0, "GPU-aaaa1111-0000-0000-0000-000000000000"),
            gpu(1, "GPU-bbbb2222-0000-0000-0000-000000000000"),
            gpu(2, "GPU-cccc3333-0000-0000-0000-000000000000"),
            gpu(3, "GPU-cccc4444-0000-0000-0000-000000000000"),
        ]
    }

    fn names(v: &[GpuInfo]) -> Vec<(usize, &str)> {
        v.iter().map(|g| (g.index, g.name.as_str())).collect()
    }

    #[test]
    fn visible_devices_unset_keeps_all() {
        assert_eq!(apply_visible_devices(four(), None).len(), 4);
    }

    #[test]
    fn visible_devices_empty_hides_all() {
        assert!(apply_visible_devices(four(), Some("")).is_empty());
    }

    #[test]
    fn visible_devices_by_index_reorders_and_renumbers() {
        let v = apply_visible_devices(four(), Some("2,0"));
        assert_eq!(names(&v), vec![(0, "gpu2"), (1, "gpu0")]);
    }

    #[test]
    fn visible_devices_by_uuid_and_prefix() {
        let v = apply_visible_devices(
            four(),
            Some("GPU-bbbb2222-0000-0000-0000-000000000000,aaaa"),
        );
        assert_eq!(names(&v), vec![(0, "gpu1"), (1, "gpu0")]);
    }

    #[test]
    fn visible_devices_stop_at_first_invalid_entry() {
        assert_eq!(
            names(&apply_visible_devices(four(), Some("1,7,0"))),
            vec![(0, "gpu1")]
        );
        // an ambiguous prefix names no single device
        assert_eq!(
            names(&apply_visible_devices(four(), Some("3,GPU-cccc"))),
            vec![(0, "gpu3")]
        );
        // a repeated device ends the list, as in CUDA
        assert_eq!(
            names(&apply_visible_devices(four(), Some("0,0,1"))),
            vec![(0, "gpu0")]
        );
        assert!(apply_visible_devices(four(), Some("-1")).is_empty());
    }

    #[test]
    fn cuda_uuid_format_matches_nvml() {
        let b: [u8; 16] = [
            0x89, 0x32, 0xf9, 0x37, 0xd7, 0x2c, 0x40, 0x84, 0x2d, 0x18, 0x5c, 0x4e, 0xd0, 0x4a,
            0x0e, 0x1f,
        ];
        assert_eq!(
            format_cuda_uuid(&b),
            "GPU-8932f937-d72c-4084-2d18-5c4ed04a0e1f"
        );
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
    }
}
