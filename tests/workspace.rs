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

/// `(section, path)` of every `[lib]` or `[[bin]]` section that says `test = false`.
fn untested_targets(manifest: &str) -> Vec<(String, String)> {
    let mut targets = Vec::new();
    for section in manifest.split("\n[").skip(1) {
        let (header, body) = section.split_once('\n').unwrap_or((section, ""));
        let value = |key: &str| {
            body.lines().take_while(|line| !line.starts_with('[')).find_map(|line| {
                line.strip_prefix(key)?.trim_start().strip_prefix('=').map(|v| v.trim().trim_matches('"'))
            })
        };
        if value("test") == Some("false") {
            targets.push((
                header.trim_end_matches(']').trim_start_matches('[').to_owned(),
                value("path").unwrap().to_owned(),
            ));
        }
    }
    targets
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
        let targets = untested_targets(&manifest);
        let bins: Vec<PathBuf> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|s| s.split_once("path = \""))
            .map(|(_, r)| member.join(r.split_once('"').unwrap().0))
            .collect();
        for (section, path) in targets {
            let file = member.join(&path);
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
