//! Generates Rust from the IDL in this folder, as listed in `../volo.workspace.yaml`.
//!
//! Paths in the yaml are relative to this crate's folder (the build script's working directory);
//! changing directory here would break Cargo's rebuild tracking of the IDL files.

fn main() {
    let config = std::path::PathBuf::from("../volo.workspace.yaml");
    // ConfigBuilder creates a missing file silently; fail loudly instead.
    assert!(config.is_file(), "{} is missing", config.display());
    if let Err(error) = volo_build::ConfigBuilder::new(config).write() {
        panic!("code generation failed: {error}");
    }
}
