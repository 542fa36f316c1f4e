//! The layering rule: the pure core imports no tokio, no fjall, no sockets, no wall
//! clock and no global RNG. This test reads the source and fails on any of them.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "fjall",
    "std::net",
    "std::time::SystemTime",
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "thread_rng",
    "rand::rng",
    "std::thread",
    "crate::store",
    "crate::node",
    "crate::net",
    "crate::resp",
];

fn check_dir(dir: &Path, offences: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).expect("src/core is readable");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            check_dir(&path, offences);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source is utf-8");
            for (lineno, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in FORBIDDEN {
                    if code.contains(word) {
                        offences.push(format!("{}:{}: uses `{word}`", path.display(), lineno + 1));
                    }
                }
            }
        }
    }
}

#[test]
fn core_is_pure() {
    let mut offences = Vec::new();
    check_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
        &mut offences,
    );
    assert!(
        offences.is_empty(),
        "impure imports in src/core:\n{}",
        offences.join("\n")
    );
}
