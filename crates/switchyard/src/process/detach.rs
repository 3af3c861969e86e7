//! `--detach`: start the dispatcher as a background process. The child is this
//! same program without `--detach`, in its own process group (so the
//! terminal's Ctrl-C and hang-up do not reach it), with stdin closed and
//! stdout/stderr appended to `--log-file`. The parent returns success only
//! once the child has written its pid file — which it does after it is
//! listening — and reports the child's log if it dies first.

use super::{pid_file, stdout};
use crate::cli::DispatcherArgs;
use anyhow::{bail, Context};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Start the dispatcher of `args` in the background and return once it is
/// ready, or fail with what its log says.
pub fn spawn(args: &DispatcherArgs) -> anyhow::Result<()> {
    let pid_path = args.pid_file.clone().unwrap_or_else(pid_file::default_path);
    pid_file::remove(&pid_path); // a stale file must not look ready
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log_file)
        .with_context(|| {
            format!(
                "cannot open log file `{}` — check --log-file",
                args.log_file.display()
            )
        })?;

    // Same arguments minus --detach; the pid file made explicit.
    let mut child_args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach" && !a.to_string_lossy().starts_with("--detach="))
        .collect();
    if args.pid_file.is_none() {
        child_args.push("--pid-file".into());
        child_args.push(pid_path.clone().into());
    }
    let mut child =
        Command::new(std::env::current_exe().context("cannot find this program's path")?)
            .args(&child_args)
            .env_remove("DISPATCHER_DETACH")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start the background dispatcher")?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the background dispatcher exited ({status}) before it was ready; see `{}`",
                args.log_file.display()
            );
        }
        if pid_file::read(&pid_path) == Some(child.id()) {
            stdout::final_line(format_args!(
                "switchyard dispatcher running in the background: pid {}, listening on {}, pid file `{}`, log `{}`",
                child.id(),
                args.listen,
                pid_path.display(),
                args.log_file.display()
            ));
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the background dispatcher was not ready within {READY_TIMEOUT:?}; see `{}`",
                args.log_file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
