//! The first frame each way: the client says which protocol version it
//! speaks, who it is (the name its judgments and the audit log carry) and,
//! over TCP, the run's token; the server accepts or refuses with a reason.

use serde::{Deserialize, Serialize};

/// Bumped whenever a `Command` or `Event` changes shape.
pub const PROTOCOL_VERSION: u32 = 2;

/// Where a trainer is reached: the run's Unix socket, or a TCP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Unix(std::path::PathBuf),
    Tcp(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// Who labels and steers from this workbench.
    pub name: String,
    /// The run's token (`trainer.token`); required over TCP.
    pub token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Welcome {
    Accepted {
        version: u32,
        /// The run's name.
        run: String,
    },
    Refused {
        reason: String,
    },
}

/// Whether the server takes `hello`: the same version, and over TCP the
/// token (compared in time independent of where they differ).
pub fn check(hello: &Hello, token: Option<&str>) -> Result<(), String> {
    if hello.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} where this trainer speaks {PROTOCOL_VERSION}: attach with the same rlhf-tui version",
            hello.version
        ));
    }
    if hello.name.trim().is_empty() || hello.name.len() > 64 {
        return Err("a name of 1 to 64 characters is needed".into());
    }
    if let Some(expected) = token {
        let given = hello.token.as_deref().unwrap_or("");
        let same = given.len() == expected.len()
            && given.bytes().zip(expected.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        if !same {
            return Err("wrong or missing token: give the run's trainer.token".into());
        }
    }
    Ok(())
}

/// A fresh token: 32 hex digits from the operating system's randomness.
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_names_and_tokens_are_checked() {
        let hello = |version, name: &str, token: Option<&str>| Hello {
            version,
            name: name.into(),
            token: token.map(String::from),
        };
        assert!(check(&hello(PROTOCOL_VERSION, "ann", None), None).is_ok());
        assert!(
            check(&hello(PROTOCOL_VERSION + 1, "ann", None), None)
                .unwrap_err()
                .contains("version")
        );
        assert!(check(&hello(PROTOCOL_VERSION, " ", None), None).is_err());
        let token = new_token();
        assert_eq!(token.len(), 32);
        assert!(check(&hello(PROTOCOL_VERSION, "ann", Some(&token)), Some(&token)).is_ok());
        assert!(
            check(&hello(PROTOCOL_VERSION, "ann", None), Some(&token))
                .unwrap_err()
                .contains("token")
        );
        assert!(check(&hello(PROTOCOL_VERSION, "ann", Some("0")), Some(&token)).is_err());
    }
}
