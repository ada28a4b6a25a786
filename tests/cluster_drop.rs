//! In its own test binary: counts this process's pool threads, so no other test may run beside it.

use onebox::Cluster;

#[test]
fn dropping_a_cluster_joins_its_threads() {
    fn pool_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("onebox-cpu"))
            .count()
    }
    let before = pool_threads();
    let c = Cluster::builder().threads(3).ignore_env().build().unwrap();
    assert_eq!(c.delayed(|| 1).compute().unwrap(), 1);
    drop(c);
    assert_eq!(
        pool_threads(),
        before,
        "pool threads still alive after drop"
    );
}
