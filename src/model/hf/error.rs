//! Why a model directory was refused: every error names the file and, where
//! there is one, the key, and says what would be accepted instead.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {error}", file.display())]
    Io { file: PathBuf, error: std::io::Error },

    #[error("{}:{line}:{column}: not valid JSON for this file: {message}", file.display())]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: `{key}` {message}", file.display())]
    Refused {
        file: PathBuf,
        key: String,
        message: String,
    },

    /// The chat template or special tokens, already naming their file.
    #[error("{0}")]
    Turns(String),
}

impl ImportError {
    pub fn io(file: &Path, error: std::io::Error) -> Self {
        ImportError::Io {
            file: file.to_path_buf(),
            error,
        }
    }

    pub fn refused(file: &Path, key: &str, message: impl Into<String>) -> Self {
        ImportError::Refused {
            file: file.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The key an error is about, for tests and for the UI.
    pub fn key(&self) -> Option<&str> {
        match self {
            ImportError::Refused { key, .. } => Some(key),
            _ => None,
        }
    }
}
