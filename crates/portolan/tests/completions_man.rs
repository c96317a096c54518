//! `portolan completions SHELL` and `portolan man`, generated from the clap definitions: the
//! bash script completes in a real bash, the page renders in a real groff, and every command
//! gets a page of its own.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use portolan_testkit::{TempDir, require_tool};

fn portolan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).output().unwrap()
}

#[test]
fn bash_completes_commands_and_flags() {
    if !require_tool("bash_completes_commands_and_flags", "bash") {
        return;
    }
    let dir = TempDir::new("completions");
    let out = portolan(&["completions", "bash"]);
    assert!(out.status.success());
    let script = dir.join("portolan.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &str| -> String {
        let prog = format!(
            "source {}\nCOMP_WORDS=({words})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\nCOMP_LINE=\"{words}\"\nCOMP_POINT=${{#COMP_LINE}}\n_portolan portolan \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script.display()
        );
        let o = Command::new("bash").args(["-c", &prog]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let commands = complete("portolan re");
    assert!(commands.lines().any(|l| l == "report"), "{commands}");
    let flags = complete("portolan report --si");
    assert!(flags.lines().any(|l| l == "--since"), "{flags}");
    let shells = complete("portolan completions z");
    assert!(shells.lines().any(|l| l == "zsh"), "{shells}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = portolan(&["completions", shell]);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("report"), "{shell}");
    }
    let bad = portolan(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_render_in_groff() {
    if !require_tool("man_pages_render_in_groff", "groff") {
        return;
    }
    let out = portolan(&["man"]);
    assert!(out.status.success());
    let roff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(roff.contains(".TH portolan 1"), "{roff}");
    let dir = TempDir::new("man");
    let page = dir.join("portolan.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let text =
        Command::new("groff").args(["-man", "-Tutf8", "-ww", page.to_str().unwrap()]).output().unwrap();
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    for cmd in ["scan", "audit", "fw", "watch", "report", "completions", "man"] {
        assert!(text.contains(cmd), "{cmd} missing from the page");
    }
    let pages = dir.join("pages");
    std::fs::create_dir(&pages).unwrap();
    let o = portolan(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in
        ["portolan.1", "portolan-scan.1", "portolan-report.1", "portolan-fw-show.1", "portolan-watch.1"]
    {
        assert!(pages.join(name).exists(), "{name}");
    }
    let o = portolan(&["man", "--dir", "/nonexistent/dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/dir"));
}
