//! Golden files for the rendering tests: the exact output the report must keep producing.

use std::path::PathBuf;

/// Compares `actual` with `tests/golden/{name}`. `BENCH_BLESS=1` rewrites the file instead,
/// for a change of output that is meant; review its diff before keeping it.
pub fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BENCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BENCH_BLESS=1 writes it)", path.display()));
    if let Some((line, (want, got))) = expected
        .lines()
        .zip(actual.lines())
        .enumerate()
        .find(|(_, (want, got))| want != got)
    {
        panic!(
            "{name} differs at line {}:\nwant: {want}\n got: {got}",
            line + 1
        );
    }
    assert_eq!(expected, actual, "{name} differs (line count or endings)");
}
