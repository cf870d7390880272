//! The plugin host: one wasmtime engine (component model, epoch
//! interruption, optionally fuel), components compiled once and cached by
//! SHA-256, and a call wrapper that bounds every call — memory through a
//! resource limiter, wall-clock time through an epoch deadline, instructions
//! through fuel, results through a size cap — and turns whatever stops a
//! call into a typed [`PluginError`]. Plugins get no WASI: their only import
//! is `log`.

use crate::bindings::drift::cairn::plugin::{log, types};
use crate::cache::ComponentCache;
use cairn_spec::PluginLimits;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};

/// How often the epoch advances: the resolution of call timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// The largest result a plugin call may return (state, predictions, lists).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// Log lines a plugin may write per call; more are dropped.
const MAX_LOG_LINES: u32 = 100;
/// Log messages are cut to this many bytes.
const MAX_LOG_BYTES: usize = 1024;

/// Why a plugin could not be loaded or a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is not the one the spec names.
    #[error("sha256 mismatch: the spec expects {expected}, the file is {actual}")]
    Checksum {
        /// The spec's `sha256`.
        expected: String,
        /// The file's.
        actual: String,
    },
    /// The component could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A built-in plugin that this build does not bundle.
    #[error("built-in plugin `{0}` is not bundled in this build of cairn")]
    NoBuiltin(String),
    /// Not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component does not implement the world it is used as.
    #[error("the component does not implement world `{world}`: {message}")]
    WrongWorld {
        /// The world expected.
        world: &'static str,
        /// What is missing.
        message: String,
    },
    /// The call ran past its wall-clock limit.
    #[error("timed out: the call ran longer than {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The plugin tried to grow its memory past the limit.
    #[error("memory limit exceeded: the plugin asked for {asked} bytes, the limit is {limit}")]
    Memory {
        /// The limit.
        limit: u64,
        /// What it asked for.
        asked: u64,
    },
    /// The call used up its instruction budget.
    #[error("out of fuel: the call used more than {0} units")]
    Fuel(u64),
    /// The plugin trapped (a panic, an unreachable, a bad access).
    #[error("trapped: {0}")]
    Trap(String),
    /// The plugin returned more than the host accepts.
    #[error("output too large: {size} bytes, the limit is {limit}")]
    OutputTooLarge {
        /// The result's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin returned an error of its own.
    #[error("{0}")]
    Failed(String),
    /// The compiled-component cache failed.
    #[error("compiled-component cache: {0}")]
    Cache(String),
}

impl PluginError {
    /// Whether the instance that returned this error must be discarded (a
    /// trap leaves a component instance unusable).
    pub fn poisons_instance(&self) -> bool {
        !matches!(
            self,
            PluginError::Failed(_) | PluginError::OutputTooLarge { .. }
        )
    }
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug)]
pub enum PluginSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// A plugin bundled with Cairn.
    Builtin(String),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

impl PluginSource {
    /// The source of a Plugin spec whose repository files are under `root`.
    pub fn of_spec(spec: &cairn_spec::PluginSpec, root: &Path) -> PluginSource {
        match (&spec.path, &spec.builtin) {
            (Some(p), _) => PluginSource::File(root.join(p.as_str())),
            (None, Some(b)) => PluginSource::Builtin(b.clone()),
            (None, None) => PluginSource::Bytes(Vec::new()),
        }
    }

    fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>, PluginError> {
        match self {
            PluginSource::File(path) => {
                std::fs::read(path)
                    .map(Into::into)
                    .map_err(|source| PluginError::Read {
                        path: path.clone(),
                        source,
                    })
            }
            PluginSource::Builtin(name) => crate::builtin::bytes(name)
                .map(Into::into)
                .ok_or_else(|| PluginError::NoBuiltin(name.clone())),
            PluginSource::Bytes(b) => Ok(b.as_slice().into()),
        }
    }
}

/// The host: engines and the compiled-component cache. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    /// For plugins without a fuel limit.
    plain: Engine,
    /// For plugins with one (fuel metering costs time, so only they pay).
    fueled: Engine,
    cache: ComponentCache,
}

impl PluginHost {
    /// A host caching compiled components under `cache_dir` (in memory
    /// only when `None`). Starts the thread that advances the epoch.
    pub fn new(cache_dir: Option<&Path>) -> Result<PluginHost, PluginError> {
        let plain = engine(false)?;
        let fueled = engine(true)?;
        let weak = [plain.weak(), fueled.weak()];
        std::thread::Builder::new()
            .name("cairn-plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    let mut alive = false;
                    for e in weak.iter().filter_map(|w| w.upgrade()) {
                        e.increment_epoch();
                        alive = true;
                    }
                    if !alive {
                        return;
                    }
                }
            })
            .map_err(|e| PluginError::Cache(format!("cannot start the epoch thread: {e}")))?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                plain,
                fueled,
                cache: ComponentCache::new(cache_dir),
            }),
        })
    }

    /// Loads a plugin: reads it, checks its SHA-256 against `expected`,
    /// and compiles it (or takes it from the cache).
    pub fn load(
        &self,
        name: &str,
        source: &PluginSource,
        expected: Option<&str>,
        limits: &PluginLimits,
    ) -> Result<Plugin, PluginError> {
        let bytes = source.read()?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        if let Some(expected) = expected
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(PluginError::Checksum {
                expected: expected.to_string(),
                actual: sha256,
            });
        }
        let engine = if limits.fuel.is_some() {
            &self.inner.fueled
        } else {
            &self.inner.plain
        };
        let component = self.inner.cache.get_or_compile(engine, &sha256, &bytes)?;
        let mut linker = Linker::new(engine);
        log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Compile(e.to_string()))?;
        Ok(Plugin {
            name: name.into(),
            sha256,
            engine: engine.clone(),
            component,
            linker: Arc::new(linker),
            bounds: Bounds::of(limits),
        })
    }
}

fn engine(fuel: bool) -> Result<Engine, PluginError> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    Engine::new(&config).map_err(|e| PluginError::Compile(e.to_string()))
}

/// The bounds of one call.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Bytes of linear memory.
    pub memory: u64,
    /// Wall-clock time.
    pub timeout: Duration,
    /// Instruction budget.
    pub fuel: Option<u64>,
}

impl Bounds {
    fn of(limits: &PluginLimits) -> Bounds {
        Bounds {
            memory: limits.memory.bytes(),
            timeout: limits.timeout.get(),
            fuel: limits.fuel,
        }
    }

    fn deadline_ticks(&self) -> u64 {
        (self.timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
    }
}

/// A compiled plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    /// The Plugin spec's name (tags its log lines).
    pub name: Arc<str>,
    /// The component's SHA-256.
    pub sha256: String,
    engine: Engine,
    pub(super) component: Component,
    pub(super) linker: Arc<Linker<HostState>>,
    /// The bounds of every call.
    pub bounds: Bounds,
}

impl Plugin {
    /// A fresh store for one instance, bounded by the plugin's limits.
    pub(super) fn store(&self) -> Store<HostState> {
        let mut store = Store::new(
            &self.engine,
            HostState {
                plugin: self.name.clone(),
                limiter: Limiter {
                    memory: usize::try_from(self.bounds.memory).unwrap_or(usize::MAX),
                    asked: None,
                },
                log_lines: 0,
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store
    }

    /// Runs `f` (an instantiation or a call) under the plugin's bounds.
    pub(super) fn call<R>(
        &self,
        store: &mut Store<HostState>,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        store.set_epoch_deadline(self.bounds.deadline_ticks());
        if let Some(fuel) = self.bounds.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| PluginError::Trap(e.to_string()))?;
        }
        store.data_mut().limiter.asked = None;
        store.data_mut().log_lines = 0;
        f(store).map_err(|e| self.classify(store, e))
    }

    fn classify(&self, store: &Store<HostState>, error: wasmtime::Error) -> PluginError {
        if let Some(asked) = store.data().limiter.asked {
            return PluginError::Memory {
                limit: self.bounds.memory,
                asked: asked as u64,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout(self.bounds.timeout),
            Some(Trap::OutOfFuel) => PluginError::Fuel(self.bounds.fuel.unwrap_or_default()),
            Some(trap) => PluginError::Trap(trap.to_string()),
            None => PluginError::Trap(format!("{error:#}")),
        }
    }
}

/// Checks a result's size against [`MAX_OUTPUT_BYTES`].
pub(super) fn check_output(size: usize) -> Result<(), PluginError> {
    if size > MAX_OUTPUT_BYTES {
        return Err(PluginError::OutputTooLarge {
            size,
            limit: MAX_OUTPUT_BYTES,
        });
    }
    Ok(())
}

/// What the host keeps per instance.
pub struct HostState {
    plugin: Arc<str>,
    limiter: Limiter,
    log_lines: u32,
}

/// Refuses (with a trap) any memory growth past the limit, and remembers
/// it so that the error names the limit.
struct Limiter {
    memory: usize,
    asked: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.asked = Some(desired);
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: types::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut end = MAX_LOG_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            types::Level::Debug => tracing::debug!(plugin, "{message}"),
            types::Level::Info => tracing::info!(plugin, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, "{message}"),
            types::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
