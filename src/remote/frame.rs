//! Frames on a byte stream: a 4-byte big-endian length, then that many
//! bytes of JSON. A length over the limit, a body that is not the expected
//! message, or a stream that ends inside a frame is refused with its
//! reason; the caller closes the connection.

use std::io::{ErrorKind, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame either side accepts: a sample set or a replayed
/// event is a few kilobytes; a megabyte leaves room and bounds what a
/// stranger can make the trainer allocate.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    #[error("the connection closed")]
    Closed,
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    Oversized(usize),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("a frame that is not a message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes `message` as one frame and flushes it.
pub fn write<T: Serialize>(stream: &mut impl Write, message: &T) -> Result<usize, FrameError> {
    let body = serde_json::to_vec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::Oversized(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame)?;
    stream.flush()?;
    Ok(frame.len())
}

/// Reads one frame and parses it as a `T`.
pub fn read<T: DeserializeOwned>(stream: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match read_exact(stream, &mut len)? {
        0 => return Err(FrameError::Closed),
        4 => {}
        _ => return Err(FrameError::Truncated),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Oversized(len));
    }
    let mut body = vec![0u8; len];
    if read_exact(stream, &mut body)? != len {
        return Err(FrameError::Truncated);
    }
    serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Fills `buf` until it is full or the stream ends; the bytes read.
fn read_exact(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused_by_reason() {
        let mut bytes = Vec::new();
        let n = write(&mut bytes, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(n, 4 + "[1,2,3]".len());
        assert_eq!(&bytes[..4], &[0, 0, 0, 7]);
        assert_eq!(read::<Vec<u32>>(&mut bytes.as_slice()).unwrap(), [1, 2, 3]);
        // Nothing more: closed, not an error in a frame.
        assert!(matches!(read::<Vec<u32>>(&mut &[][..]), Err(FrameError::Closed)));
        // Cut inside the length, inside the body, over the limit, not JSON.
        assert!(matches!(read::<Vec<u32>>(&mut &bytes[..2]), Err(FrameError::Truncated)));
        assert!(matches!(read::<Vec<u32>>(&mut &bytes[..6]), Err(FrameError::Truncated)));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read::<Vec<u32>>(&mut &huge[..]),
            Err(FrameError::Oversized(_))
        ));
        let junk = [0, 0, 0, 3, b'{', b'x', b'}'];
        assert!(matches!(
            read::<Vec<u32>>(&mut &junk[..]),
            Err(FrameError::Malformed(_))
        ));
    }
}
