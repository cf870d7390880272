// tidy: long file: process groups, adoption and the supervise shim share private helpers; a third is tests.
//! Supervised local processes.
//!
//! The embedded runtime runs jobs and services as ordinary processes on this
//! machine. Each one is started in its own process group so that stopping it
//! also stops everything it started, writes its output straight into a log
//! file (so logs survive a controller restart), and is left running when the
//! controller's handle is dropped, so that a restarted controller can
//! [`adopt`] it again by pid.
//!
//! A process that must report its exit status even when it outlives the
//! controller is run under a small shim (the hidden `__supervise`
//! subcommand, implemented by [`supervise_main`]) that waits for the real
//! command and records the outcome in an *exit file*.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// How often an adopted process (one that is not our child) is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often [`ProcessHandle::terminate`] checks whether a group is gone.
const GROUP_POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long [`ProcessHandle::terminate`] waits for a group to vanish after
/// `SIGKILL` before giving up on it.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// The running executable, even after its file was replaced or removed.
const SELF_EXE: &str = "/proc/self/exe";

/// Exit code the shim reports when the real command cannot be started
/// (the shell convention for "command not found").
const SPAWN_FAILED_CODE: i32 = 127;

/// Signals the shim catches (with a handler that does nothing) so that a
/// signal sent to the whole process group reaches the real command but does
/// not kill the shim before it has recorded the outcome. Caught signals are
/// reset to their default action by `exec`, so the real command sees normal
/// signal behaviour. `SIGKILL` and `SIGSTOP` cannot be caught; a group killed
/// with `SIGKILL` leaves no exit file.
const SHIM_CAUGHT_SIGNALS: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGIO,
    libc::SIGPWR,
];

/// What to run, where, and where its output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program to run: a path, or a name looked up in `PATH`.
    pub program: String,
    /// Arguments passed to the program (not including the program itself).
    pub args: Vec<String>,
    /// Working directory of the process.
    pub cwd: PathBuf,
    /// Environment variables to set, in order (later entries win).
    pub env: Vec<(String, String)>,
    /// Start from an empty environment. Otherwise the process starts from
    /// what a workload inherits of the controller's
    /// ([`cairn_runtime::workload_env`]: `PATH`, `HOME`, the locale, proxies;
    /// never its credentials), then `env`.
    pub clear_env: bool,
    /// File that receives both stdout and stderr. It is opened in append
    /// mode and created (with its parent directories) when missing.
    pub log_path: PathBuf,
    /// When set, the program runs under the `__supervise` shim, which writes
    /// the exit outcome to this file so it is known even after a controller
    /// restart. A stale file at this path is removed before starting.
    pub exit_file: Option<PathBuf>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program name was empty.
    #[error("cannot start a process: the program name is empty")]
    EmptyProgram,
    /// The log file's directory could not be created.
    #[error("cannot create log directory {}: {source}", path.display())]
    CreateLogDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The log file could not be opened for appending.
    #[error("cannot open log file {}: {source}", path.display())]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A stale exit file could not be removed before starting.
    #[error("cannot remove stale exit file {}: {source}", path.display())]
    ExitFile {
        /// The exit file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path of the running executable (needed for the shim) is unknown.
    #[error("cannot find the cairn executable to run the supervise shim: {0}")]
    CurrentExe(#[source] io::Error),
    /// The operating system refused to start the process.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program that was being started.
        program: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitOutcome {
    /// The process exited normally with this exit code.
    Exited(i32),
    /// The process was killed by this signal.
    Signaled(i32),
    /// The process is gone, but how it ended is not known (an adopted
    /// process without an exit file, or one whose shim was killed).
    Unknown,
}

impl ExitOutcome {
    /// True only for a normal exit with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitOutcome::Exited(0))
    }

    /// The outcome described by an [`ExitStatus`] from `waitpid`.
    fn from_status(status: ExitStatus) -> ExitOutcome {
        if let Some(code) = status.code() {
            ExitOutcome::Exited(code)
        } else if let Some(signal) = status.signal() {
            ExitOutcome::Signaled(signal)
        } else {
            ExitOutcome::Unknown
        }
    }

    /// The exit file line for this outcome (`exited N` / `signaled N`);
    /// `None` for [`ExitOutcome::Unknown`].
    fn to_exit_file_line(self) -> Option<String> {
        match self {
            ExitOutcome::Exited(code) => Some(format!("exited {code}")),
            ExitOutcome::Signaled(signal) => Some(format!("signaled {signal}")),
            ExitOutcome::Unknown => None,
        }
    }

    /// Parses the content of an exit file.
    fn parse_exit_file(content: &str) -> Option<ExitOutcome> {
        let mut words = content.split_whitespace();
        let kind = words.next()?;
        let number: i32 = words.next()?.parse().ok()?;
        if words.next().is_some() {
            return None;
        }
        match kind {
            "exited" => Some(ExitOutcome::Exited(number)),
            "signaled" => Some(ExitOutcome::Signaled(number)),
            _ => None,
        }
    }
}

impl fmt::Display for ExitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitOutcome::Exited(code) => write!(f, "exit code {code}"),
            ExitOutcome::Signaled(signal) => match signal_name(*signal) {
                Some(name) => write!(f, "killed by signal {signal} ({name})"),
                None => write!(f, "killed by signal {signal}"),
            },
            ExitOutcome::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// The conventional name of a Linux signal number.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Reads and parses an exit file written by the `__supervise` shim.
///
/// Returns `None` when the file is missing or malformed. Useful when
/// [`adopt`] reports that a process is already gone: its outcome may still
/// be on disk.
pub fn read_exit_file(path: &Path) -> Option<ExitOutcome> {
    let content = fs::read_to_string(path).ok()?;
    ExitOutcome::parse_exit_file(&content)
}

/// A running (or finished) supervised process.
///
/// Dropping a handle does not stop the process.
#[derive(Debug)]
pub struct ProcessHandle {
    /// Process id of the group leader (the program, or its shim).
    pid: u32,
    /// Process group id; the process started its own group.
    pgid: i32,
    /// Start time of the process in clock ticks after boot, to detect pid
    /// reuse.
    start_ticks: u64,
    /// The child, when this controller started it; `None` when adopted.
    child: Option<tokio::process::Child>,
    /// Where the shim records the outcome, if it runs under one.
    exit_file: Option<PathBuf>,
    /// The outcome, once known.
    outcome: Option<ExitOutcome>,
    /// Whether `terminate` escalated to `SIGKILL` (an adopted process then
    /// counts as killed by `SIGKILL` when no exit file says otherwise).
    sent_kill: bool,
}

impl ProcessHandle {
    /// The process id of the supervised process (the shim, when there is an
    /// exit file). It is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process's start time (field 22 of `/proc/PID/stat`, clock ticks
    /// after boot). Store it with the pid; [`adopt`] compares it to tell the
    /// process from a later one that reused the pid.
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    /// Waits for the process to end and returns how it ended.
    ///
    /// For a process this controller started, this reaps it; when it ran
    /// under the shim, the exit file (which records the real command's
    /// outcome rather than the shim's) takes precedence. For an adopted
    /// process, `/proc` is polled every 100 ms until the process is gone
    /// (or a zombie, or its pid was reused), then the exit file is read;
    /// without one the outcome is [`ExitOutcome::Unknown`].
    ///
    /// Cancel-safe; once the outcome is known it is returned again by every
    /// later call.
    pub async fn wait(&mut self) -> ExitOutcome {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        let outcome = match self.child.as_mut() {
            Some(child) => {
                let status = child.wait().await;
                let from_file = self.exit_file.as_deref().and_then(read_exit_file);
                match (from_file, status) {
                    (Some(outcome), _) => outcome,
                    (None, Ok(status)) => ExitOutcome::from_status(status),
                    (None, Err(error)) => {
                        tracing::warn!(pid = self.pid, %error, "waiting for process failed");
                        ExitOutcome::Unknown
                    }
                }
            }
            None => {
                while is_running(self.pid, self.start_ticks) {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                match self.exit_file.as_deref().and_then(read_exit_file) {
                    Some(outcome) => outcome,
                    None if self.sent_kill => ExitOutcome::Signaled(libc::SIGKILL),
                    None => ExitOutcome::Unknown,
                }
            }
        };
        self.outcome = Some(outcome);
        outcome
    }

    /// Sends `signal` to every process in the process group.
    ///
    /// Refuses (with `InvalidInput`) to signal group 0 or 1 or the
    /// controller's own group, which would hit the controller itself.
    pub fn signal_group(&self, signal: i32) -> io::Result<()> {
        // SAFETY: getpgrp has no preconditions and cannot fail.
        let own_group = unsafe { libc::getpgrp() };
        if self.pgid <= 1 || self.pgid == own_group {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to signal process group {}", self.pgid),
            ));
        }
        // SAFETY: killpg only sends a signal; the group id is checked above.
        if unsafe { libc::killpg(self.pgid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Stops the whole process group: `SIGTERM` to the group, up to `grace`
    /// for the process and the rest of its group to exit, then `SIGKILL` to
    /// whatever is left of the group. Returns the process's outcome.
    pub async fn terminate(&mut self, grace: Duration) -> ExitOutcome {
        let deadline = Instant::now() + grace;
        if self.outcome.is_none() || self.group_alive() {
            self.signal_group_quietly(libc::SIGTERM);
        }
        // Wait for the leader, then for the rest of its group, within the grace.
        let leader_done = tokio::time::timeout_at(deadline, self.wait()).await.is_ok();
        if leader_done {
            while self.group_alive() && Instant::now() < deadline {
                tokio::time::sleep(GROUP_POLL_INTERVAL).await;
            }
        }
        if !leader_done || self.group_alive() {
            self.sent_kill = true;
            self.signal_group_quietly(libc::SIGKILL);
        }
        let outcome = self.wait().await;
        // SIGKILL is delivered promptly, but a member in uninterruptible sleep
        // may take a moment to go.
        let settle = Instant::now() + KILL_SETTLE;
        while self.group_alive() && Instant::now() < settle {
            tokio::time::sleep(GROUP_POLL_INTERVAL).await;
        }
        outcome
    }

    /// Whether any process of the group is still alive. Zombies do not
    /// count: an orphaned member that has exited stays in the group until
    /// init reaps it, which some inits (notably in containers) do slowly.
    fn group_alive(&self) -> bool {
        if self.signal_group(0).is_err() {
            return false;
        }
        group_has_live_member(self.pgid)
    }

    /// Signals the group, logging failures other than "no such group".
    fn signal_group_quietly(&self, signal: i32) {
        if let Err(error) = self.signal_group(signal)
            && error.raw_os_error() != Some(libc::ESRCH)
        {
            tracing::warn!(pgid = self.pgid, signal, %error, "cannot signal process group");
        }
    }
}

/// Starts a process as described by `spec`, in a new process group, with
/// stdin from `/dev/null` and stdout and stderr appended to the log file.
///
/// With an exit file, the current executable runs as the shim
/// (`cairn __supervise --exit-file FILE -- PROGRAM ARGS...`), which starts
/// the program and records its outcome.
///
/// Must be called from within a Tokio runtime.
pub fn spawn(spec: &ProcessSpec) -> Result<ProcessHandle, ProcessError> {
    if spec.program.is_empty() {
        return Err(ProcessError::EmptyProgram);
    }
    let log = open_log(&spec.log_path)?;
    let log_for_stderr = log.try_clone().map_err(|source| ProcessError::OpenLog {
        path: spec.log_path.clone(),
        source,
    })?;

    let mut command = match &spec.exit_file {
        None => {
            let mut command = tokio::process::Command::new(&spec.program);
            command.args(&spec.args);
            command
        }
        Some(exit_file) => {
            for path in [exit_file.clone(), tmp_path(exit_file)] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(ProcessError::ExitFile { path, source }),
                }
            }
            let exe = std::env::current_exe().map_err(ProcessError::CurrentExe)?;
            // Once the executable is replaced on disk (an upgrade, a
            // rebuild), its path no longer leads to this binary, or to none
            // at all; `/proc/self/exe` still does.
            let program = if Path::new(SELF_EXE).exists() {
                PathBuf::from(SELF_EXE)
            } else {
                exe.clone()
            };
            let mut command = tokio::process::Command::new(program);
            command
                .arg0(&exe)
                .arg("__supervise")
                .arg("--exit-file")
                .arg(exit_file)
                .arg("--")
                .arg(&spec.program)
                .args(&spec.args);
            command
        }
    };
    command.env_clear();
    if !spec.clear_env {
        command.envs(cairn_runtime::workload_env::inherited(std::env::vars_os()));
    }
    command
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr))
        .process_group(0)
        .kill_on_drop(false);

    let child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: spec.program.clone(),
        source,
    })?;
    let pid = child
        .id()
        .expect("a child that has not been waited for has a pid");
    // The child cannot have been reaped yet, so /proc/PID/stat exists.
    let start_ticks = start_ticks(pid).unwrap_or(0);
    Ok(ProcessHandle {
        pid,
        pgid: pid as i32,
        start_ticks,
        child: Some(child),
        exit_file: spec.exit_file.clone(),
        outcome: None,
        sent_kill: false,
    })
}

/// Opens the log file for appending, creating it and its directory.
fn open_log(path: &Path) -> Result<File, ProcessError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ProcessError::CreateLogDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProcessError::OpenLog {
            path: path.to_path_buf(),
            source,
        })
}

/// Takes charge of a process started earlier (typically by a previous
/// controller) from its pid and start ticks.
///
/// Returns `None` when no process has that pid, or the process with that pid
/// started at a different time (the pid was reused). The returned handle's
/// [`ProcessHandle::wait`] polls `/proc` and reads `exit_file` once the
/// process is gone. When `None` is returned, the outcome may still be read
/// with [`read_exit_file`].
pub fn adopt(pid: u32, start_ticks: u64, exit_file: Option<PathBuf>) -> Option<ProcessHandle> {
    let stat = read_stat(pid)?;
    if stat.start_ticks != start_ticks {
        return None;
    }
    Some(ProcessHandle {
        pid,
        pgid: stat.pgrp,
        start_ticks,
        child: None,
        exit_file,
        outcome: None,
        sent_kill: false,
    })
}

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    read_stat(pid).map(|stat| stat.start_ticks)
}

/// The fields of `/proc/PID/stat` this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    /// Field 3: `R`, `S`, `Z`, ...
    state: char,
    /// Field 5: process group id.
    pgrp: i32,
    /// Field 22: start time in clock ticks after boot.
    start_ticks: u64,
}

impl ProcStat {
    /// A zombie (exited, not yet reaped) or dead process.
    fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/PID/stat`.
fn read_stat(pid: u32) -> Option<ProcStat> {
    if pid == 0 {
        return None;
    }
    let content = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&content)
}

/// Parses the content of `/proc/PID/stat`. The second field (the command
/// name, in parentheses) may itself contain spaces and parentheses, so the
/// remaining fields start after the last `)`.
fn parse_stat(content: &str) -> Option<ProcStat> {
    let rest = &content[content.rfind(')')? + 1..];
    // `rest` starts at field 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(5 - 3)?.parse().ok()?;
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        start_ticks,
    })
}

/// Whether some process of group `pgid` is alive (not a zombie), by a scan
/// of `/proc`. True when `/proc` cannot be read.
fn group_has_live_member(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return true;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .any(|stat| stat.pgrp == pgid && !stat.is_dead())
}

/// Whether process `pid` that started at `start_ticks` is still running
/// (exists, was not replaced by a process reusing the pid, and is not a
/// zombie).
fn is_running(pid: u32, start_ticks: u64) -> bool {
    match read_stat(pid) {
        Some(stat) => stat.start_ticks == start_ticks && !stat.is_dead(),
        None => false,
    }
}

/// `<file>.tmp`, next to `file`.
fn tmp_path(file: &Path) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes the exit file atomically: to `<file>.tmp`, then renamed.
fn write_exit_file(path: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Does nothing: installed for the signals the shim must survive.
extern "C" fn ignore_signal(_signal: libc::c_int) {}

/// Installs [`ignore_signal`] for [`SHIM_CAUGHT_SIGNALS`], returning the
/// previous actions so they can be restored.
fn catch_group_signals() -> Vec<(i32, libc::sigaction)> {
    let mut previous = Vec::new();
    for &signal in SHIM_CAUGHT_SIGNALS {
        // SAFETY: sigaction structs are plain data, zero is a valid initial
        // value; the handler is async-signal-safe (it does nothing).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut old) == 0 {
                previous.push((signal, old));
            }
        }
    }
    previous
}

/// Restores signal actions saved by [`catch_group_signals`].
fn restore_signals(previous: Vec<(i32, libc::sigaction)>) {
    for (signal, old) in previous {
        // SAFETY: `old` was returned by sigaction for this signal.
        unsafe {
            libc::sigaction(signal, &old, std::ptr::null_mut());
        }
    }
}

/// The `cairn __supervise --exit-file FILE -- COMMAND...` shim.
///
/// Runs `command` (inheriting stdio and staying in the shim's process
/// group), waits for it, writes `exited N` or `signaled N` atomically to
/// `exit_file`, and exits with the same code (128 + the signal number when
/// the command was killed by a signal). A command that cannot be started
/// is recorded as `exited 127`.
///
/// Signals sent to the process group (`SIGTERM`, `SIGINT`, `SIGUSR1`, ...)
/// reach the command directly; the shim itself survives them so that it can
/// still record the outcome. Only `SIGKILL` stops it without an exit file.
pub fn supervise_main(exit_file: &Path, command: &[String]) -> ExitCode {
    let previous = catch_group_signals();
    let outcome = run_supervised(command);
    restore_signals(previous);

    let line = outcome
        .to_exit_file_line()
        .unwrap_or_else(|| format!("exited {SPAWN_FAILED_CODE}"));
    if let Err(error) = write_exit_file(exit_file, &line) {
        eprintln!(
            "cairn supervise: cannot write exit file {}: {error}",
            exit_file.display()
        );
    }
    let code = match outcome {
        ExitOutcome::Exited(code) => code,
        ExitOutcome::Signaled(signal) => 128 + signal,
        ExitOutcome::Unknown => SPAWN_FAILED_CODE,
    };
    ExitCode::from((code & 0xff) as u8)
}

/// Runs the supervised command to completion.
fn run_supervised(command: &[String]) -> ExitOutcome {
    let Some((program, args)) = command.split_first() else {
        eprintln!("cairn supervise: no command given");
        return ExitOutcome::Exited(SPAWN_FAILED_CODE);
    };
    let mut child = match std::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("cairn supervise: cannot start `{program}`: {error}");
            return ExitOutcome::Exited(SPAWN_FAILED_CODE);
        }
    };
    match child.wait() {
        Ok(status) => ExitOutcome::from_status(status),
        Err(error) => {
            eprintln!("cairn supervise: waiting for `{program}` failed: {error}");
            ExitOutcome::Unknown
        }
    }
}

/// Entry point of the `cairn __supervise --exit-file FILE -- COMMAND...`
/// shim, from the arguments after `__supervise`.
pub fn supervise_from_args(args: &[String]) -> ExitCode {
    match args {
        [flag, file, sep, command @ ..]
            if flag == "--exit-file" && sep == "--" && !command.is_empty() =>
        {
            supervise_main(Path::new(file), command)
        }
        _ => {
            eprintln!("usage: cairn __supervise --exit-file FILE -- COMMAND [ARGS...]");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh_spec(dir: &Path, script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: Vec::new(),
            clear_env: false,
            log_path: dir.join("logs/out.log"),
            exit_file: None,
        }
    }

    fn group_gone(pgid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        let rc = unsafe { libc::kill(-pgid, 0) };
        rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    /// Asserts that no process of the group is alive within 2 s, and that
    /// the group is gone altogether (`kill(-pgid, 0)` fails with `ESRCH`)
    /// once init has reaped the orphaned members, which the init of some
    /// containers does only every second or two.
    async fn assert_group_gone(pgid: i32) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while group_has_live_member(pgid) {
            assert!(Instant::now() < deadline, "group {pgid} still alive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !group_gone(pgid) {
            assert!(Instant::now() < deadline, "group {pgid} not reaped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let mut fields = vec!["S", "1", "4242", "4242"];
        fields.extend(std::iter::repeat_n("0", 15));
        fields.push("987654"); // field 22
        fields.extend(["100", "200"]);
        let tail = fields.join(" ");
        for comm in ["sleep", "a b", "x) (y", ") S 1 2 3", "((("] {
            let content = format!("4242 ({comm}) {tail}\n");
            let stat = parse_stat(&content).unwrap_or_else(|| panic!("parse {content}"));
            assert_eq!(
                stat,
                ProcStat {
                    state: 'S',
                    pgrp: 4242,
                    start_ticks: 987654
                },
                "{comm}"
            );
        }
        assert_eq!(parse_stat("4242 (truncated) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn start_ticks_of_live_and_missing_processes() {
        let own = start_ticks(std::process::id()).expect("own stat");
        assert!(own > 0);
        assert_eq!(start_ticks(std::process::id()), Some(own));
        assert_eq!(start_ticks(0), None);
        assert_eq!(start_ticks(u32::MAX - 1), None);
    }

    #[test]
    fn outcome_display_and_success() {
        assert_eq!(ExitOutcome::Exited(3).to_string(), "exit code 3");
        assert_eq!(
            ExitOutcome::Signaled(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            ExitOutcome::Signaled(15).to_string(),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(ExitOutcome::Signaled(40).to_string(), "killed by signal 40");
        assert_eq!(ExitOutcome::Unknown.to_string(), "exit status unknown");
        assert!(ExitOutcome::Exited(0).success());
        assert!(!ExitOutcome::Exited(1).success());
        assert!(!ExitOutcome::Signaled(9).success());
        assert!(!ExitOutcome::Unknown.success());
    }

    #[test]
    fn parses_exit_files() {
        let parse = ExitOutcome::parse_exit_file;
        assert_eq!(parse("exited 0\n"), Some(ExitOutcome::Exited(0)));
        assert_eq!(parse("exited 3"), Some(ExitOutcome::Exited(3)));
        assert_eq!(parse("signaled 9\n"), Some(ExitOutcome::Signaled(9)));
        assert_eq!(parse(""), None);
        assert_eq!(parse("exited"), None);
        assert_eq!(parse("exited x"), None);
        assert_eq!(parse("exited 1 2"), None);
        assert_eq!(parse("crashed 1"), None);
        assert_eq!(read_exit_file(Path::new("/nonexistent/exit")), None);
    }

    #[tokio::test]
    async fn spawn_logs_stdout_and_stderr_and_reports_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sh_spec(dir.path(), "echo out; echo err >&2; exit 3");
        let mut handle = spawn(&spec).unwrap();
        assert!(handle.pid() > 0);
        assert!(handle.start_ticks() > 0);
        assert_eq!(handle.wait().await, ExitOutcome::Exited(3));
        // The outcome is remembered.
        assert_eq!(handle.wait().await, ExitOutcome::Exited(3));

        // A second run appends to the same log.
        let mut again = spawn(&sh_spec(dir.path(), "echo second")).unwrap();
        assert!(again.wait().await.success());
        let log = fs::read_to_string(&spec.log_path).unwrap();
        assert_eq!(log, "out\nerr\nsecond\n");
    }

    #[tokio::test]
    async fn spawn_sets_env_cwd_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs::create_dir(&work).unwrap();
        let mut spec = sh_spec(
            dir.path(),
            "echo \"foo=$FOO home=${HOME:-none}\"; pwd; cat; echo end",
        );
        spec.cwd = work.clone();
        spec.env = vec![("FOO".into(), "bar".into())];
        spec.clear_env = true;
        let mut handle = spawn(&spec).unwrap();
        assert!(handle.wait().await.success());
        let log = fs::read_to_string(&spec.log_path).unwrap();
        let work = work.canonicalize().unwrap();
        assert_eq!(log, format!("foo=bar home=none\n{}\nend\n", work.display()));
    }

    #[tokio::test]
    async fn spawn_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh_spec(dir.path(), "true");
        spec.program = "/nonexistent/program".into();
        let error = spawn(&spec).unwrap_err();
        assert!(matches!(error, ProcessError::Spawn { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/program"));

        spec.program = String::new();
        assert!(matches!(spawn(&spec), Err(ProcessError::EmptyProgram)));

        let mut spec = sh_spec(dir.path(), "true");
        fs::write(dir.path().join("file"), "").unwrap();
        spec.log_path = dir.path().join("file/sub/out.log");
        let error = spawn(&spec).unwrap_err();
        assert!(
            matches!(error, ProcessError::CreateLogDir { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn reports_signals() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = spawn(&sh_spec(dir.path(), "kill -9 $$")).unwrap();
        assert_eq!(handle.wait().await, ExitOutcome::Signaled(libc::SIGKILL));
    }

    #[tokio::test]
    async fn runs_in_its_own_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = spawn(&sh_spec(dir.path(), "sleep 5")).unwrap();
        let stat = read_stat(handle.pid()).unwrap();
        assert_eq!(stat.pgrp as u32, handle.pid());
        // SAFETY: getpgrp has no preconditions.
        assert_ne!(stat.pgrp, unsafe { libc::getpgrp() });
        handle.signal_group(libc::SIGTERM).unwrap();
        assert_eq!(handle.wait().await, ExitOutcome::Signaled(libc::SIGTERM));
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = spawn(&sh_spec(dir.path(), "sleep 100 & sleep 100; wait")).unwrap();
        let pgid = handle.pid() as i32;
        // Let the shell start its children.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let outcome = handle.terminate(Duration::from_secs(1)).await;
        assert_eq!(outcome, ExitOutcome::Signaled(libc::SIGTERM));
        // Everything died of SIGTERM: no need to wait out the grace.
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_group_gone(pgid).await;
        // Terminating again is harmless and returns the same outcome.
        assert_eq!(handle.terminate(Duration::from_millis(10)).await, outcome);
    }

    #[tokio::test]
    async fn terminate_escalates_to_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = spawn(&sh_spec(
            dir.path(),
            "trap '' TERM; sleep 100 & sleep 100; wait",
        ))
        .unwrap();
        let pgid = handle.pid() as i32;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let outcome = handle.terminate(Duration::from_millis(300)).await;
        assert_eq!(outcome, ExitOutcome::Signaled(libc::SIGKILL));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn terminate_kills_stragglers_after_the_leader_exits() {
        let dir = tempfile::tempdir().unwrap();
        // The leader exits on SIGTERM; its child ignores SIGTERM.
        let mut handle = spawn(&sh_spec(
            dir.path(),
            "(trap '' TERM; sleep 100) & trap 'exit 0' TERM; while :; do sleep 0.05; done",
        ))
        .unwrap();
        let pgid = handle.pid() as i32;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let outcome = handle.terminate(Duration::from_millis(300)).await;
        assert_eq!(outcome, ExitOutcome::Exited(0));
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn dropping_a_handle_leaves_the_process_running() {
        let dir = tempfile::tempdir().unwrap();
        let handle = spawn(&sh_spec(dir.path(), "sleep 100")).unwrap();
        let pid = handle.pid();
        let ticks = handle.start_ticks();
        drop(handle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(is_running(pid, ticks));
        let mut adopted = adopt(pid, ticks, None).expect("still running");
        // Adopted without an exit file: killed by SIGTERM is not knowable.
        let outcome = adopted.terminate(Duration::from_secs(1)).await;
        assert_eq!(outcome, ExitOutcome::Unknown);
        assert_group_gone(pid as i32).await;
    }

    #[tokio::test]
    async fn adopt_and_wait_reads_the_exit_file() {
        use std::os::unix::process::CommandExt;

        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let ticks = start_ticks(pid).unwrap();

        assert!(adopt(pid, ticks + 1, None).is_none(), "pid reuse detected");
        assert!(adopt(u32::MAX - 1, ticks, None).is_none(), "missing pid");
        let mut handle = adopt(pid, ticks, Some(exit_file.clone())).unwrap();
        assert_eq!(handle.pid(), pid);
        assert_eq!(handle.start_ticks(), ticks);

        write_exit_file(&exit_file, "exited 7").unwrap();
        // We are the real parent here: reap it so it leaves /proc.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(5), handle.wait())
            .await
            .expect("wait finishes");
        assert_eq!(outcome, ExitOutcome::Exited(7));
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(reaper.join().unwrap().success());
        assert!(adopt(pid, ticks, None).is_none(), "gone after exit");
    }

    #[tokio::test]
    async fn adopt_without_exit_file_is_unknown() {
        use std::os::unix::process::CommandExt;

        let mut child = std::process::Command::new("sleep")
            .arg("0.1")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut handle = adopt(pid, start_ticks(pid).unwrap(), None).unwrap();
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        assert_eq!(handle.wait().await, ExitOutcome::Unknown);
        reaper.join().unwrap();
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn supervise_records_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("state/exit");
        let code = supervise_main(&exit_file, &strings(&["sh", "-c", "exit 3"]));
        assert_eq!(code, ExitCode::from(3));
        assert_eq!(fs::read_to_string(&exit_file).unwrap(), "exited 3\n");
        assert!(!tmp_path(&exit_file).exists());
        assert_eq!(read_exit_file(&exit_file), Some(ExitOutcome::Exited(3)));

        let code = supervise_main(&exit_file, &strings(&["true"]));
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(fs::read_to_string(&exit_file).unwrap(), "exited 0\n");
    }

    #[test]
    fn supervise_records_signals() {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let code = supervise_main(&exit_file, &strings(&["sh", "-c", "kill -TERM $$"]));
        assert_eq!(code, ExitCode::from(128 + libc::SIGTERM as u8));
        assert_eq!(fs::read_to_string(&exit_file).unwrap(), "signaled 15\n");
    }

    #[test]
    fn supervise_records_start_failures() {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let code = supervise_main(&exit_file, &strings(&["/nonexistent/program"]));
        assert_eq!(code, ExitCode::from(127));
        assert_eq!(read_exit_file(&exit_file), Some(ExitOutcome::Exited(127)));

        let code = supervise_main(&exit_file, &[]);
        assert_eq!(code, ExitCode::from(127));
    }
}
