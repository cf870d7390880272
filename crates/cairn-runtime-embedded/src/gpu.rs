//! GPU discovery and assignment.
//!
//! The embedded runtime finds this machine's NVIDIA GPUs through NVML (the
//! driver's management library, loaded at run time, so a machine without a
//! driver simply has no GPUs), hands them out to resources through a
//! [`GpuAllocator`], and tells each process which devices it may use through
//! `CUDA_VISIBLE_DEVICES`.
//!
//! For development and tests, `CAIRN_FAKE_GPUS` replaces discovery with fake
//! devices: `CAIRN_FAKE_GPUS=4` gives devices 0 to 3, `CAIRN_FAKE_GPUS=0,2`
//! gives devices 0 and 2.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use nvml_wrapper::Nvml;
use serde::Serialize;

/// Environment variable that replaces GPU discovery with fake devices.
pub const FAKE_GPUS_ENV: &str = "CAIRN_FAKE_GPUS";

/// Total memory reported for each fake device (80 GiB).
pub const FAKE_GPU_MEMORY_BYTES: u64 = 80 * 1024 * 1024 * 1024;

/// The most fake devices `CAIRN_FAKE_GPUS` may ask for.
const MAX_FAKE_GPUS: u32 = 1024;

/// One GPU of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuDevice {
    /// NVML index (PCI bus order), as used in `CUDA_VISIBLE_DEVICES` when
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
    pub index: u32,
    /// The device's UUID (`GPU-...`), stable across reboots.
    pub uuid: String,
    /// The product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total device memory in bytes.
    pub memory_total_bytes: u64,
}

/// Where the GPU inventory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuSource {
    /// Discovered through NVML.
    Nvml,
    /// Made up from `CAIRN_FAKE_GPUS`.
    Fake,
    /// No GPUs could be discovered (see the inventory's note).
    None,
}

/// The GPUs of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInventory {
    /// The devices, in index order.
    pub devices: Vec<GpuDevice>,
    /// How the devices were found.
    pub source: GpuSource,
    /// Why there are fewer devices than one might expect (NVML missing, a
    /// bad `CAIRN_FAKE_GPUS`, a device that could not be queried).
    pub note: Option<String>,
}

impl GpuInventory {
    /// Discovers this machine's GPUs.
    ///
    /// `CAIRN_FAKE_GPUS`, when set and not empty, wins and yields fake
    /// devices named `Fake GPU N` with UUID `GPU-fake-N` (a malformed value
    /// yields no devices and a note). Otherwise NVML is asked; when it is
    /// not available the inventory is empty, with source
    /// [`GpuSource::None`] and a note saying why. Never panics.
    pub fn discover() -> GpuInventory {
        discover_from(std::env::var(FAKE_GPUS_ENV).ok().as_deref())
    }

    /// The device indices, in order.
    pub fn indices(&self) -> Vec<u32> {
        self.devices.iter().map(|d| d.index).collect()
    }
}

/// Discovery, given the value of `CAIRN_FAKE_GPUS` (if set).
fn discover_from(fake: Option<&str>) -> GpuInventory {
    if let Some(value) = fake_value(fake) {
        return fake_inventory(value);
    }
    match nvml() {
        Ok(nvml) => nvml_inventory(nvml),
        Err(reason) => GpuInventory {
            devices: Vec::new(),
            source: GpuSource::None,
            note: Some(format!("NVML not available: {reason}")),
        },
    }
}

/// The fake-GPU setting, if it is set to something other than blanks.
fn fake_value(fake: Option<&str>) -> Option<&str> {
    fake.map(str::trim).filter(|v| !v.is_empty())
}

/// The inventory described by a (non-empty) `CAIRN_FAKE_GPUS` value.
fn fake_inventory(value: &str) -> GpuInventory {
    match parse_fake_gpus(value) {
        Ok(indices) => GpuInventory {
            devices: indices
                .into_iter()
                .map(|index| GpuDevice {
                    index,
                    uuid: format!("GPU-fake-{index}"),
                    name: format!("Fake GPU {index}"),
                    memory_total_bytes: FAKE_GPU_MEMORY_BYTES,
                })
                .collect(),
            source: GpuSource::Fake,
            note: None,
        },
        Err(reason) => GpuInventory {
            devices: Vec::new(),
            source: GpuSource::Fake,
            note: Some(format!("invalid {FAKE_GPUS_ENV} value {value:?}: {reason}")),
        },
    }
}

/// Parses `CAIRN_FAKE_GPUS`: a single number is a device count (`4` means
/// devices 0 to 3), a comma-separated list gives the indices (`0,2`).
fn parse_fake_gpus(value: &str) -> Result<Vec<u32>, String> {
    let value = value.trim();
    if !value.contains(',') {
        let count: u32 = value
            .parse()
            .map_err(|_| "expected a device count like `4` or indices like `0,1,2`".to_string())?;
        if count > MAX_FAKE_GPUS {
            return Err(format!("at most {MAX_FAKE_GPUS} fake devices"));
        }
        return Ok((0..count).collect());
    }
    let mut indices = BTreeSet::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let index: u32 = part
            .parse()
            .map_err(|_| format!("`{part}` is not a device index"))?;
        if index >= MAX_FAKE_GPUS {
            return Err(format!("device index {index} is too large"));
        }
        if !indices.insert(index) {
            return Err(format!("device index {index} appears twice"));
        }
    }
    Ok(indices.into_iter().collect())
}

/// NVML, initialized once per process (the outcome, failure included, is
/// cached).
fn nvml() -> Result<&'static Nvml, &'static str> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(String::as_str)
}

/// Lists the devices NVML knows about.
fn nvml_inventory(nvml: &Nvml) -> GpuInventory {
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            return GpuInventory {
                devices: Vec::new(),
                source: GpuSource::None,
                note: Some(format!("NVML cannot count devices: {error}")),
            };
        }
    };
    let mut devices = Vec::new();
    let mut problems = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                problems.push(format!("GPU {index} skipped: {error}"));
                continue;
            }
        };
        let uuid = device.uuid().unwrap_or_else(|error| {
            problems.push(format!("GPU {index} has no UUID: {error}"));
            String::new()
        });
        let name = device.name().unwrap_or_else(|error| {
            problems.push(format!("GPU {index} has no name: {error}"));
            "unknown".to_string()
        });
        let memory_total_bytes = match device.memory_info() {
            Ok(memory) => memory.total,
            Err(error) => {
                problems.push(format!("GPU {index} memory unknown: {error}"));
                0
            }
        };
        devices.push(GpuDevice {
            index,
            uuid,
            name,
            memory_total_bytes,
        });
    }
    GpuInventory {
        devices,
        source: GpuSource::Nvml,
        note: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// Current use of one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuUsage {
    /// The device index.
    pub index: u32,
    /// Percent of the last sample period during which a kernel was running.
    pub utilization_percent: u32,
    /// Device memory in use, in bytes.
    pub memory_used_bytes: u64,
    /// Total device memory, in bytes.
    pub memory_total_bytes: u64,
}

/// Samples utilization and memory use of every GPU through NVML.
///
/// Empty when NVML is not available or `CAIRN_FAKE_GPUS` is set (fake
/// devices have no usage). Devices that cannot be queried are left out.
pub fn sample_usage() -> Vec<GpuUsage> {
    sample_usage_from(std::env::var(FAKE_GPUS_ENV).ok().as_deref())
}

/// Sampling, given the value of `CAIRN_FAKE_GPUS` (if set).
fn sample_usage_from(fake: Option<&str>) -> Vec<GpuUsage> {
    if fake_value(fake).is_some() {
        return Vec::new();
    }
    let Ok(nvml) = nvml() else {
        return Vec::new();
    };
    let Ok(count) = nvml.device_count() else {
        return Vec::new();
    };
    (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let utilization = device.utilization_rates().ok()?;
            let memory = device.memory_info().ok()?;
            Some(GpuUsage {
                index,
                utilization_percent: utilization.gpu,
                memory_used_bytes: memory.used,
                memory_total_bytes: memory.total,
            })
        })
        .collect()
}

/// One holder's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    /// The pool the devices were taken from.
    pool: String,
    /// The devices, ascending.
    devices: Vec<u32>,
}

/// Hands out GPUs from named pools to holders (resources), each device to at
/// most one holder at a time, across all pools: pools may share devices.
#[derive(Debug, Clone, Default)]
pub struct GpuAllocator {
    /// Each pool's devices.
    pools: BTreeMap<String, BTreeSet<u32>>,
    /// Each holder's devices.
    holders: BTreeMap<String, Assignment>,
}

impl GpuAllocator {
    /// An allocator with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines (or redefines) a pool's devices.
    ///
    /// Current assignments are kept: a holder keeps its devices until it is
    /// [released](Self::release), even when they have left the pool, since
    /// the process using them is still running. Devices still held are not
    /// handed out again.
    pub fn set_pool(&mut self, pool: &str, devices: Vec<u32>) {
        self.pools
            .insert(pool.to_string(), devices.into_iter().collect());
    }

    /// Removes a pool definition. Assignments made from it are kept until
    /// released.
    pub fn remove_pool(&mut self, pool: &str) {
        self.pools.remove(pool);
    }

    /// Gives `holder` `count` free devices of `pool`, lowest indices first,
    /// or nothing at all (`None`) when the pool is unknown or has fewer than
    /// `count` free devices.
    ///
    /// When `holder` already holds devices, the call is idempotent: the same
    /// devices are returned if they came from the same pool and are `count`
    /// many; otherwise `None` (release first to change an assignment).
    /// Asking for zero devices gives an empty assignment, which is not
    /// recorded.
    pub fn try_allocate(&mut self, pool: &str, holder: &str, count: u32) -> Option<Vec<u32>> {
        if let Some(existing) = self.holders.get(holder) {
            return (existing.pool == pool && existing.devices.len() == count as usize)
                .then(|| existing.devices.clone());
        }
        if count == 0 {
            return Some(Vec::new());
        }
        let free = self.free(pool);
        if free.len() < count as usize {
            return None;
        }
        let devices: Vec<u32> = free.into_iter().take(count as usize).collect();
        self.holders.insert(
            holder.to_string(),
            Assignment {
                pool: pool.to_string(),
                devices: devices.clone(),
            },
        );
        Some(devices)
    }

    /// Records that `holder` already holds `devices` from `pool`, e.g. for a
    /// process adopted after a controller restart. The devices need not be
    /// in the pool (any more). Returns false, recording nothing, when one of
    /// them is held by another holder or `holder` already holds different
    /// devices.
    pub fn restore(&mut self, pool: &str, holder: &str, devices: Vec<u32>) -> bool {
        let devices: Vec<u32> = devices
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(existing) = self.holders.get(holder) {
            return existing.pool == pool && existing.devices == devices;
        }
        let held = self.held();
        if devices.iter().any(|d| held.contains(d)) {
            return false;
        }
        if !devices.is_empty() {
            self.holders.insert(
                holder.to_string(),
                Assignment {
                    pool: pool.to_string(),
                    devices,
                },
            );
        }
        true
    }

    /// Gives back everything `holder` holds (nothing happens if it holds
    /// nothing).
    pub fn release(&mut self, holder: &str) {
        self.holders.remove(holder);
    }

    /// The devices of `pool` that nobody holds, ascending (empty for an
    /// unknown pool).
    pub fn free(&self, pool: &str) -> Vec<u32> {
        let Some(devices) = self.pools.get(pool) else {
            return Vec::new();
        };
        let held = self.held();
        devices
            .iter()
            .copied()
            .filter(|d| !held.contains(d))
            .collect()
    }

    /// Every holder with its devices, ordered by holder.
    pub fn assignments(&self) -> Vec<(String, Vec<u32>)> {
        self.holders
            .iter()
            .map(|(holder, a)| (holder.clone(), a.devices.clone()))
            .collect()
    }

    /// All devices held by anyone.
    fn held(&self) -> BTreeSet<u32> {
        self.holders
            .values()
            .flat_map(|a| a.devices.iter().copied())
            .collect()
    }
}

/// The `CUDA_VISIBLE_DEVICES` value for these devices: `"0,2"`.
///
/// CUDA numbers devices fastest first unless `CUDA_DEVICE_ORDER=PCI_BUS_ID`
/// is set, while NVML indices follow the PCI bus order; set both (see
/// [`cuda_env`]) so that the indices mean the same devices.
pub fn cuda_visible_devices(indices: &[u32]) -> String {
    indices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The environment for a process that may use exactly these devices:
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID` and `CUDA_VISIBLE_DEVICES`.
pub fn cuda_env(indices: &[u32]) -> Vec<(String, String)> {
    vec![
        ("CUDA_DEVICE_ORDER".to_string(), "PCI_BUS_ID".to_string()),
        (
            "CUDA_VISIBLE_DEVICES".to_string(),
            cuda_visible_devices(indices),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_count_and_list_forms() {
        let inv = discover_from(Some("4"));
        assert_eq!(inv.source, GpuSource::Fake);
        assert_eq!(inv.note, None);
        assert_eq!(inv.indices(), vec![0, 1, 2, 3]);
        assert_eq!(inv.devices[2].name, "Fake GPU 2");
        assert_eq!(inv.devices[2].uuid, "GPU-fake-2");
        assert_eq!(inv.devices[2].memory_total_bytes, FAKE_GPU_MEMORY_BYTES);

        let inv = discover_from(Some(" 0, 2 ,1 "));
        assert_eq!(inv.source, GpuSource::Fake);
        assert_eq!(inv.indices(), vec![0, 1, 2]);
        assert_eq!(inv.devices[0].uuid, "GPU-fake-0");

        // A trailing comma makes a single index a list.
        assert_eq!(discover_from(Some("3,")).indices(), vec![3]);
        // A count of zero means no devices.
        let inv = discover_from(Some("0"));
        assert_eq!((inv.source, inv.devices.len()), (GpuSource::Fake, 0));
    }

    #[test]
    fn bad_fake_values_give_a_note() {
        for bad in ["x", "-1", "1.5", "0,x", "1,1", "5000", "2000,1"] {
            let inv = discover_from(Some(bad));
            assert_eq!(inv.source, GpuSource::Fake, "{bad}");
            assert!(inv.devices.is_empty(), "{bad}");
            let note = inv.note.unwrap();
            assert!(note.contains("CAIRN_FAKE_GPUS"), "{note}");
            assert!(note.contains(bad), "{note}");
        }
    }

    #[test]
    fn discovery_without_fake_gpus_never_panics() {
        for fake in [None, Some(""), Some("  ")] {
            let inv = discover_from(fake);
            match inv.source {
                GpuSource::Nvml => {}
                GpuSource::None => {
                    assert!(inv.devices.is_empty());
                    assert!(inv.note.unwrap().starts_with("NVML not available: "));
                }
                GpuSource::Fake => panic!("no fake devices were asked for"),
            }
        }
        // Sampling never panics either, and is empty for fake devices.
        let _ = sample_usage_from(None);
        assert!(sample_usage_from(Some("2")).is_empty());
    }

    #[test]
    fn serializes_source_lowercase() {
        let inv = discover_from(Some("1"));
        let json = serde_json::to_value(&inv).unwrap();
        assert_eq!(json["source"], "fake");
        assert_eq!(json["devices"][0]["uuid"], "GPU-fake-0");
        assert_eq!(serde_json::to_value(GpuSource::None).unwrap(), "none");
        assert_eq!(serde_json::to_value(GpuSource::Nvml).unwrap(), "nvml");
    }

    #[test]
    fn allocation_is_all_or_nothing_and_lowest_first() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("default", vec![3, 1, 0, 2]);
        assert_eq!(alloc.free("default"), vec![0, 1, 2, 3]);
        assert_eq!(alloc.try_allocate("default", "a", 2), Some(vec![0, 1]));
        assert_eq!(alloc.try_allocate("default", "b", 3), None);
        assert_eq!(alloc.free("default"), vec![2, 3]);
        assert_eq!(alloc.try_allocate("default", "b", 1), Some(vec![2]));
        assert_eq!(alloc.try_allocate("default", "c", 0), Some(vec![]));
        assert_eq!(alloc.try_allocate("missing", "d", 1), None);
        assert_eq!(alloc.free("missing"), Vec::<u32>::new());
        assert_eq!(
            alloc.assignments(),
            vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![2])]
        );
    }

    #[test]
    fn release_frees_devices() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("p", vec![0, 1, 2]);
        alloc.try_allocate("p", "a", 1).unwrap();
        alloc.try_allocate("p", "b", 1).unwrap();
        alloc.release("a");
        alloc.release("nobody");
        assert_eq!(alloc.free("p"), vec![0, 2]);
        assert_eq!(alloc.try_allocate("p", "c", 2), Some(vec![0, 2]));
        assert_eq!(alloc.free("p"), Vec::<u32>::new());
    }

    #[test]
    fn allocation_is_idempotent_per_holder() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("p", vec![0, 1, 2, 3]);
        alloc.set_pool("q", vec![0, 1, 2, 3]);
        assert_eq!(alloc.try_allocate("p", "a", 2), Some(vec![0, 1]));
        assert_eq!(alloc.try_allocate("p", "a", 2), Some(vec![0, 1]));
        assert_eq!(alloc.try_allocate("p", "a", 1), None);
        assert_eq!(alloc.try_allocate("q", "a", 2), None);
        assert_eq!(alloc.free("p"), vec![2, 3]);
    }

    #[test]
    fn pools_share_devices() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("big", vec![0, 1, 2, 3]);
        alloc.set_pool("small", vec![2, 3]);
        assert_eq!(alloc.try_allocate("small", "s", 1), Some(vec![2]));
        assert_eq!(alloc.free("big"), vec![0, 1, 3]);
        assert_eq!(alloc.try_allocate("big", "b", 3), Some(vec![0, 1, 3]));
        assert_eq!(alloc.free("small"), Vec::<u32>::new());
        assert_eq!(alloc.try_allocate("small", "t", 1), None);
        alloc.release("b");
        assert_eq!(alloc.free("small"), vec![3]);
    }

    #[test]
    fn redefining_a_pool_keeps_assignments() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("p", vec![0, 1, 2, 3]);
        assert_eq!(alloc.try_allocate("p", "a", 2), Some(vec![0, 1]));
        assert_eq!(alloc.try_allocate("p", "b", 1), Some(vec![2]));
        // Device 2 leaves the pool, device 5 joins: holders keep what they
        // hold until released; device 2 is not handed out while held.
        alloc.set_pool("p", vec![0, 1, 3, 5]);
        assert_eq!(alloc.free("p"), vec![3, 5]);
        assert_eq!(alloc.assignments().len(), 2);
        alloc.set_pool("q", vec![2, 6]);
        assert_eq!(alloc.free("q"), vec![6]);
        alloc.release("b");
        assert_eq!(alloc.free("q"), vec![2, 6]);
        alloc.remove_pool("p");
        assert_eq!(alloc.free("p"), Vec::<u32>::new());
        assert_eq!(alloc.assignments(), vec![("a".to_string(), vec![0, 1])]);
    }

    #[test]
    fn restore_records_existing_assignments() {
        let mut alloc = GpuAllocator::new();
        alloc.set_pool("p", vec![0, 1, 2, 3]);
        assert!(alloc.restore("p", "a", vec![2, 1]));
        assert!(alloc.restore("p", "a", vec![1, 2]));
        assert!(!alloc.restore("p", "a", vec![1]));
        assert!(!alloc.restore("p", "b", vec![2, 3]));
        assert_eq!(alloc.free("p"), vec![0, 3]);
        assert_eq!(alloc.try_allocate("p", "c", 2), Some(vec![0, 3]));
        assert_eq!(alloc.try_allocate("p", "a", 2), Some(vec![1, 2]));
    }

    #[test]
    fn cuda_strings() {
        assert_eq!(cuda_visible_devices(&[]), "");
        assert_eq!(cuda_visible_devices(&[0]), "0");
        assert_eq!(cuda_visible_devices(&[0, 2]), "0,2");
        assert_eq!(
            cuda_env(&[1, 3]),
            vec![
                ("CUDA_DEVICE_ORDER".to_string(), "PCI_BUS_ID".to_string()),
                ("CUDA_VISIBLE_DEVICES".to_string(), "1,3".to_string()),
            ]
        );
    }
}
