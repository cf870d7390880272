//! Golden files: expected output kept beside the tests.

use std::path::Path;

/// Compares `actual` with the golden file `dir/name`, or writes it with
/// `CAIRN_BLESS=1`.
pub fn check_golden(dir: &Path, name: &str, actual: &str) {
    let path = dir.join(name);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with CAIRN_BLESS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        expected, actual,
        "{name} differs from its golden file; if the change is intended, rerun with CAIRN_BLESS=1"
    );
}
