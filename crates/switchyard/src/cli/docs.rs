//! `switchyard completions <shell>` and `switchyard man`: the shell
//! completion scripts and the manual page, generated from the command line
//! itself so they never fall behind it.

use clap::{Args, CommandFactory};
use std::io::Write;

/// The shells `switchyard completions` writes a script for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shell {
    /// Bash: source it, or save it as `/usr/share/bash-completion/completions/switchyard`.
    Bash,
    /// Zsh: save it as `_switchyard` in a directory of `$fpath`.
    Zsh,
    /// Fish: save it as `~/.config/fish/completions/switchyard.fish`.
    Fish,
}

/// `switchyard completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the completion script for `args.shell` to standard output.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    print(&completion_script(args.shell))
}

/// Write the manual page, in roff, to standard output.
pub fn man() -> anyhow::Result<()> {
    print(&manual_page()?)
}

/// The completion script for `shell`. Made in memory first: the generator
/// cannot report a write error, and a reader may leave early (`| head`).
fn completion_script(shell: Shell) -> Vec<u8> {
    use clap_complete::Shell as Target;
    let target = match shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(
        target,
        &mut crate::cli::Cli::command(),
        "switchyard",
        &mut script,
    );
    script
}

/// The manual page of the whole command line, in roff.
fn manual_page() -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut page)?;
    Ok(roff_ascii(&String::from_utf8_lossy(&page)).into_bytes())
}

/// `page` with every character beyond ASCII (the help's arrows, say) as
/// roff's `\[uXXXX]` escape, so it renders the same with or without a
/// UTF-8 preprocessor in front of the formatter.
fn roff_ascii(page: &str) -> String {
    let mut ascii = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            ascii.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    ascii
}

fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = crate::process::stdout::stdout();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_names_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion_script(shell)).unwrap();
            for command in ["dispatcher", "run", "validate", "dlq", "completions", "man"] {
                assert!(script.contains(command), "{shell:?} lacks {command}");
            }
        }
    }

    #[test]
    fn the_manual_page_is_roff_listing_the_commands() {
        let page = String::from_utf8(manual_page().unwrap()).unwrap();
        assert!(page.contains(".TH switchyard 1"), "{page}");
        assert!(
            page.contains("dispatcher") && page.contains("completions"),
            "{page}"
        );
        assert!(page.is_ascii(), "{page}");
    }

    #[test]
    fn characters_beyond_ascii_become_roff_escapes() {
        assert_eq!(roff_ascii("a \u{2192} b \u{e9}"), "a \\[u2192] b \\[u00E9]");
    }
}
