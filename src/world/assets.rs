//! The built-in world's base model inside the binary, so that `rlhf-tui`
//! works from any directory once installed (`cargo install --path .`).
//! Embedded rather than looked for beside the executable: `cargo install`
//! copies the executable alone. The default model path, `assets/base`, is
//! read from the working directory when it is there (a checkout, or a
//! person's own model put there); otherwise from a copy written once into
//! the user's cache directory.

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;
use crate::run::RunConfig;

/// Where a checkout keeps the base model, and the config's default.
pub const DEFAULT_BASE: &str = "assets/base";

/// The base model directory's files, as built into the binary.
const BASE: [(&str, &[u8]); 4] = [
    ("config.json", include_bytes!("../../assets/base/config.json")),
    (
        "model.safetensors",
        include_bytes!("../../assets/base/model.safetensors"),
    ),
    ("tokenizer.json", include_bytes!("../../assets/base/tokenizer.json")),
    ("pretrain.json", include_bytes!("../../assets/base/pretrain.json")),
];

/// Points the config's SFT start at the embedded base model when it names
/// the default and the working directory has no such directory.
pub fn locate_base(config: &mut RunConfig) -> anyhow::Result<()> {
    if config.sft.init == Path::new(DEFAULT_BASE) && !config.sft.init.is_dir() {
        config.sft.init = embedded_base()?;
    }
    Ok(())
}

/// The embedded base model as a directory in the cache, written on first
/// use (per version, so an upgrade brings its own).
fn embedded_base() -> anyhow::Result<PathBuf> {
    let cache = directories::ProjectDirs::from("", "", "rlhf-tui")
        .map(|dirs| dirs.cache_dir().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    let dir = cache.join(format!("base-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    for (name, bytes) in BASE {
        let path = dir.join(name);
        let whole = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !whole {
            write_atomic(&path, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    Ok(dir)
}
