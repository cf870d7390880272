//! Opaque state bytes for values a plugin keeps between calls (a drift
//! detector's fitted reference): a compact binary encoding (postcard) behind
//! a tag, so that bytes from another plugin or another version of the
//! state's layout are refused with a clear message instead of misread.

use crate::Error;
use serde::{Serialize, de::DeserializeOwned};

/// Encodes `value` behind `tag` (e.g. `b"psi1"`: name it after the plugin and
/// the layout's version).
pub fn encode<T: Serialize>(tag: &[u8; 4], value: &T) -> Vec<u8> {
    let mut out = tag.to_vec();
    // Serializing plain data into a Vec cannot fail.
    out.extend(postcard::to_allocvec(value).expect("state serializes"));
    out
}

/// Decodes bytes written by [`encode`] with the same `tag`.
pub fn decode<T: DeserializeOwned>(tag: &[u8; 4], bytes: &[u8]) -> Result<T, Error> {
    let body = bytes.strip_prefix(tag.as_slice()).ok_or_else(|| {
        Error::new(format!(
            "the state was not fitted by this plugin (expected tag {:?}); fit the reference again",
            String::from_utf8_lossy(tag)
        ))
    })?;
    postcard::from_bytes(body).map_err(|e| {
        Error::new(format!(
            "the fitted state is corrupt ({e}); fit the reference again"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_bytes() {
        let v = (vec![1.5f64, 2.0], "x".to_string());
        let bytes = encode(b"test", &v);
        assert_eq!(decode::<(Vec<f64>, String)>(b"test", &bytes).unwrap(), v);
        let e = decode::<(Vec<f64>, String)>(b"othr", &bytes).unwrap_err();
        assert!(e.message().contains("not fitted by this plugin"), "{e}");
        let e = decode::<(Vec<f64>, String)>(b"test", &bytes[..6]).unwrap_err();
        assert!(e.message().contains("corrupt"), "{e}");
    }
}
