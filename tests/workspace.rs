//! The workspace's own rules. Targets marked `test = false` in a Cargo.toml (to spare CI
//! the disk of empty test binaries) must hold no tests, or those tests would never run.

use std::path::{Path, PathBuf};

use sluice_tests::project_root;

/// The members listed in the workspace's Cargo.toml.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let list = manifest.split_once("members = [").expect("a members list").1.split_once(']').unwrap().0;
    list.split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m))
        .collect()
}

/// A `[lib]` or `[[bin]]` section of a manifest.
struct Target {
    section: String,
    path: String,
    /// False where the section says `test = false`.
    tested: bool,
}

/// The manifest's `[lib]` and `[[bin]]` sections (those name a `path` here).
fn targets(manifest: &str) -> Vec<Target> {
    manifest
        .split("\n[")
        .skip(1)
        .filter_map(|section| {
            let (header, body) = section.split_once('\n').unwrap_or((section, ""));
            let section = header.trim_end_matches(']').trim_start_matches('[');
            let value = |key: &str| {
                body.lines().take_while(|line| !line.starts_with('[')).find_map(|line| {
                    line.strip_prefix(key)?.trim_start().strip_prefix('=').map(|v| v.trim().trim_matches('"'))
                })
            };
            matches!(section, "lib" | "bin").then(|| Target {
                section: section.to_owned(),
                path: value("path").expect("targets name their path").to_owned(),
                tested: value("test") != Some("false"),
            })
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn targets_marked_test_false_hold_no_tests() {
    let mut checked = 0;
    for member in members(&project_root()) {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).unwrap();
        let targets = targets(&manifest);
        let bins: Vec<PathBuf> = targets.iter().filter(|t| t.section == "bin").map(|t| member.join(&t.path)).collect();
        for Target { section, path, .. } in targets.iter().filter(|t| !t.tested) {
            let file = member.join(path);
            let mut files = Vec::new();
            if section == "lib" {
                // The library's module tree: its folder, less the binaries' roots.
                rust_files(file.parent().unwrap(), &mut files);
                files.retain(|f| !bins.contains(f));
            } else {
                files.push(file);
            }
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(
                    !["#[test]", "#[cfg(test)]", "#[tokio::test"].iter().any(|marker| text.contains(marker)),
                    "{} holds tests, but its target [{section}] in {} says test = false: remove that line",
                    file.display(),
                    member.join("Cargo.toml").display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} files checked: is the manifest parsing still right?");
}
