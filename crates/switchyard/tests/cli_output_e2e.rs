//! End to end: the mesh token's transport is checked at start-up, and
//! commands that print results end quietly when their reader has gone
//! (`switchyard mesh call … | head`), instead of panicking on the broken pipe.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-mesh-token";

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.env_remove("SWITCHYARD_MESH_TOKEN").stdin(Stdio::null());
    cmd
}

/// Run `cmd` with a standard output whose reader is already closed, so its
/// first write fails with a broken pipe.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

fn assert_quiet_success(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
}

fn node_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("node.yaml");
    std::fs::write(
        &path,
        format!(
            "id: node-a\nlisten: 127.0.0.1:0\nnamespaces: [orders]\ntoken: {TOKEN}\n\
             pipeline: {{endpoint: {}}}\n\
             services:\n  - bind: orders/Who.Am\n    handler: echo\n{extra}",
            dir.join("events.jsonl").display()
        ),
    )
    .unwrap();
    path
}

/// Kills the node when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_mesh_token_without_tls_is_refused_unless_allowed_and_then_warned_about() {
    let dir = tempfile::tempdir().unwrap();

    // Not allowed: the node does not start, and says why and what to do.
    let config = node_config(dir.path(), "");
    let err = dir.path().join("refused.log");
    let mut refused = Running(
        bin()
            .args(["node", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = refused.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node started with a token and no TLS"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("clear text")
            && stderr.contains("Configure `tls:`")
            && stderr.contains("allow_plaintext_token: true"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(TOKEN),
        "the token is never printed: {stderr}"
    );

    // Allowed: it starts, and its log warns.
    let config = node_config(dir.path(), "allow_plaintext_token: true\n");
    let log = dir.path().join("node.log");
    let node = Running(
        bin()
            .args(["node", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("node listening") {
            break text;
        }
        assert!(Instant::now() < deadline, "the node did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains("WARN") && text.contains("travels in clear text"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "the token is never logged: {text}");

    // `mesh call … | head` with the reader gone before the answer is printed.
    let listen = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .expect("the listen address in the log")
        .to_string();
    let out = with_closed_stdout(
        bin()
            .args(["mesh", "call", "--addr", &listen, "--token", TOKEN])
            .args(["serve", "--namespace", "orders", "--service", "Who"])
            .args(["--method", "Am", "--input", r#"{"hello":1}"#]),
    );
    assert_quiet_success("mesh call", &out);
    // A token with no --ca goes in clear text: the caller is told.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token without --ca") && !stderr.contains(TOKEN),
        "{stderr}"
    );
    drop(node);
}

#[test]
fn listing_commands_end_quietly_when_their_reader_has_gone() {
    assert_quiet_success("plugins", &with_closed_stdout(bin().arg("plugins")));
    let dir = tempfile::tempdir().unwrap();
    let out = with_closed_stdout(bin().args(["dlq", "list", "--dir"]).arg(dir.path()));
    assert_quiet_success("dlq list", &out);
}

/// `switchyard <args>`, which must succeed: its standard output.
fn stdout_of(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_each_shell_name_the_commands_and_bash_parses_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for command in [
            "dispatcher",
            "run",
            "validate",
            "dlq",
            "bench",
            "node",
            "man",
        ] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
        // Options of the commands are completed too.
        assert!(
            script.contains("event-bus"),
            "{shell} script lacks --event-bus"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.bash");
    std::fs::write(&path, stdout_of(&["completions", "bash"])).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let unknown = bin().args(["completions", "tcsh"]).output().unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
}

#[test]
fn the_manual_page_is_roff_and_renders() {
    let page = stdout_of(&["man"]);
    let title = page
        .lines()
        .find(|l| l.starts_with('.') && !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(title.starts_with(".TH switchyard 1"), "{page}");
    assert!(
        page.contains(".SH SUBCOMMANDS") || page.contains("dispatcher"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.1");
    std::fs::write(&path, &page).unwrap();
    match Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&path)
        .output()
    {
        Ok(out) => {
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && warnings.is_empty(),
                "groff: {warnings}"
            );
            let text = Command::new("groff")
                .args(["-man", "-Tascii", "-P-cbou"])
                .arg(&path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(
                text.contains("NAME") && text.contains("dispatcher"),
                "{text}"
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: groff is not installed, so the manual page was not rendered");
        }
        Err(e) => panic!("cannot run groff: {e}"),
    }
}

#[test]
fn completions_and_man_end_quietly_when_their_reader_has_gone() {
    for args in [&["completions", "bash"][..], &["man"]] {
        let out = with_closed_stdout(bin().args(args));
        assert_quiet_success(&format!("{args:?}"), &out);
    }
}
