//! Misbehaviours for testing a plugin host, chosen by the config's `mode`:
//!
//! | mode | what the call does |
//! |---|---|
//! | `ok` | returns at once (per-call overhead benchmarks) |
//! | `loop` | never returns (fuel or the deadline must stop it) |
//! | `memory` | allocates 1 MiB blocks, touching each, until an allocation fails, then returns an error saying how much it got (the memory limit must hold) |
//! | `trap` | panics, which traps (`unreachable`) |
//! | `huge-output` | returns a result of about 100 MB (building it needs a memory limit above about 110 MiB; under the default 64 MiB the allocation traps) |
//!
//! `phase` picks which call misbehaves (see each plugin); the others
//! behave as `ok`.

use cairn_plugin_sdk::{Config, Error, Result};

/// Size of the `huge-output` result.
pub const HUGE_BYTES: usize = 100 * 1024 * 1024;

/// The behaviour a call should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Return at once.
    Ok,
    /// Spin forever.
    Loop,
    /// Allocate until it fails.
    Memory,
    /// Trap.
    Trap,
    /// Return about 100 MB.
    HugeOutput,
}

const SETTINGS: [&str; 2] = ["mode", "phase"];

impl Mode {
    /// The mode for a call in `phase`, given the config's `mode` and
    /// `phase` (one of `phases`, default the first).
    pub fn for_phase(config: &Config, phases: &[&str], phase: &str) -> Result<Mode> {
        config.check_keys(&SETTINGS)?;
        let mode = config.choice_or(
            "mode",
            &["ok", "loop", "memory", "trap", "huge-output"],
            "ok",
        )?;
        let chosen = config.choice_or("phase", phases, phases[0])?;
        if chosen != phase && chosen != "all" {
            return Ok(Mode::Ok);
        }
        Ok(match mode {
            "loop" => Mode::Loop,
            "memory" => Mode::Memory,
            "trap" => Mode::Trap,
            "huge-output" => Mode::HugeOutput,
            _ => Mode::Ok,
        })
    }

    /// Misbehaves as chosen for the modes that never return normally
    /// (`loop`, `trap`) and returns the error of `memory`; `ok` and
    /// `huge-output` return `Ok` for the caller to build its result.
    pub fn misbehave(self) -> Result<()> {
        match self {
            Mode::Ok | Mode::HugeOutput => Ok(()),
            Mode::Loop => spin(),
            Mode::Trap => panic!("hostile plugin: trap requested"),
            Mode::Memory => Err(exhaust_memory()),
        }
    }
}

/// Loops forever without being optimized away.
pub fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB blocks until an allocation fails.
pub fn exhaust_memory() -> Error {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() || blocks.try_reserve(1).is_err() {
            let got = blocks.len();
            drop(blocks);
            return Error::new(format!("out of memory after {got} MiB"));
        }
        block.resize(1 << 20, 1u8);
        blocks.push(std::hint::black_box(block));
    }
}
