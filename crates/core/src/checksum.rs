use base64::Engine;
use sha2::{Digest, Sha256};

/// A body's SHA-256 in the two spellings AWS uses: hex (catalog, object metadata) and
/// base64 (the S3 `x-amz-checksum-sha256` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Digest {
    pub hex: String,
    pub base64: String,
}

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(bytes))
    }

    /// The digest of everything `reader` yields, read in pieces.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        std::io::copy(&mut reader, &mut hasher)?;
        Ok(Self::from_digest(&hasher.finalize()))
    }

    fn from_digest(digest: &[u8]) -> Self {
        Self {
            hex: digest.iter().map(|b| format!("{b:02x}")).collect(),
            base64: base64::engine::general_purpose::STANDARD.encode(digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vector() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(digest.hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(digest.base64, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(Sha256Digest::of_reader(&b"abc"[..]).unwrap(), digest);
    }
}
