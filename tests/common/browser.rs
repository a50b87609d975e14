//! What the browser tests need: Debian's chromium, node and mosquitto_pub, and tests/browser's node modules.

use std::path::Path;
use std::process::Command;

use super::root;

pub const SETUP_HINT: &str = "run scripts/test.sh (scripts/setup.sh --test installs chromium, nodejs/npm, \
                              mosquitto-clients and the node modules of tests/browser)";

fn require(what: &str, ok: bool) {
    assert!(ok, "{what} is missing: {SETUP_HINT}");
}

/// Whether `cmd` can be started (on the PATH and executable); its exit status does not matter.
fn found(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok()
}

/// Checks chromium, node and mosquitto_pub, runs `npm ci` in tests/browser if its modules are missing, and
/// returns that directory.
pub fn browser_dir() -> std::path::PathBuf {
    require("/usr/bin/chromium (Debian package chromium)", Path::new("/usr/bin/chromium").exists());
    require("node (Debian package nodejs)", found("node", "--version"));
    require("mosquitto_pub (Debian package mosquitto-clients)", found("mosquitto_pub", "--help"));
    let dir = root().join("tests/browser");
    if dir.join("node_modules/playwright-core").is_dir() && dir.join("node_modules/axe-core").is_dir() {
        return dir;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("npm: {e}: {SETUP_HINT}"));
    assert!(
        out.status.success(),
        "npm ci --prefix tests/browser failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
