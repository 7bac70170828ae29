//! The app's own trees (docs/architecture.md, "Minimal image"): for a path
//! no package owns, the topmost folder outside the system folders holds the
//! app (`/app`, `/srv/x`, `/opt/x`, `/usr/src/x`), and is kept whole. One rule,
//! used by the unit closure and by the tar index that captures each app
//! tree's `package.json`.

/// The app tree that holds `path`, if `path` is outside the system folders
/// (see the module docs of [`super::units`]).
pub fn app_tree_of(path: &str) -> Option<String> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let first = *comps.first()?;
    const SYSTEM: &[&str] = &[
        "usr", "bin", "sbin", "etc", "var", "proc", "sys", "dev", "tmp", "run", "boot", "mnt",
        "media", "root", "home",
    ];
    match first {
        "usr" if comps.len() >= 4 && comps[1] == "src" => Some(format!("/usr/src/{}", comps[2])),
        "opt" | "srv" if comps.len() >= 3 => Some(format!("/{first}/{}", comps[1])),
        "opt" | "srv" => None,
        f if SYSTEM.contains(&f) || f.starts_with("lib") => None,
        _ if comps.len() >= 2 => Some(format!("/{first}")),
        _ => None,
    }
}

/// Whether `path` is an app tree's own `package.json` (its `dependencies`
/// name what the app may `require` lazily): the tar index captures it.
pub fn is_app_manifest(path: &str) -> bool {
    path.strip_suffix("/package.json")
        .is_some_and(|dir| app_tree_of(path).as_deref() == Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_trees_and_their_manifests() {
        assert_eq!(app_tree_of("/app/lib/report.js").as_deref(), Some("/app"));
        assert_eq!(app_tree_of("/srv/shop/a.py").as_deref(), Some("/srv/shop"));
        assert_eq!(app_tree_of("/usr/lib/x.so"), None);
        assert!(is_app_manifest("/app/package.json"));
        assert!(!is_app_manifest("/app/node_modules/x/package.json"));
        assert!(!is_app_manifest("/usr/share/nodejs/x/package.json"));
    }
}
