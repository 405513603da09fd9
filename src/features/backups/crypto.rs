//! The server's layer of backup encryption: XChaCha20-Poly1305 with a random 192-bit nonce,
//! under a versioned key from `secrets.toml`. The associated data names the owner and the
//! backup id, so a sealed row copied to another user or another id fails to open.

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{AeadInOut, KeyInit},
};

use crate::secrets::Key256;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

fn associated_data(user_id: &str, backup_id: &str) -> Vec<u8> {
    format!("persona-backup/v1\0{user_id}\0{backup_id}").into_bytes()
}

fn cipher(key: &Key256) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.as_bytes()).into())
}

/// Encrypts `data` in place (it grows by the 16-byte tag) and returns the nonce.
pub fn seal(
    key: &Key256,
    user_id: &str,
    backup_id: &str,
    data: &mut Vec<u8>,
) -> anyhow::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    cipher(key)
        .encrypt_in_place(
            &XNonce::from(nonce),
            &associated_data(user_id, backup_id),
            data,
        )
        .map_err(|_| anyhow::anyhow!("backup encryption failed"))?;
    Ok(nonce)
}

/// Decrypts `sealed` in place (it shrinks by the tag). Fails when the key, the nonce, the
/// owner, the id or a single byte differs from what was sealed.
pub fn open(
    key: &Key256,
    user_id: &str,
    backup_id: &str,
    nonce: &[u8],
    sealed: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| anyhow::anyhow!("backup nonce has the wrong length"))?;
    cipher(key)
        .decrypt_in_place(
            &XNonce::from(nonce),
            &associated_data(user_id, backup_id),
            sealed,
        )
        .map_err(|_| anyhow::anyhow!("backup {backup_id} failed authentication"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_for_its_owner_id_and_key() {
        let key = Key256::generate().unwrap();
        let mut data = b"the little brain".to_vec();
        let nonce = seal(&key, "u1", "b1", &mut data).unwrap();
        assert_eq!(data.len(), 16 + TAG_LEN);
        assert!(!data.windows(6).any(|w| w == b"little"));

        let mut copy = data.clone();
        open(&key, "u1", "b1", &nonce, &mut copy).unwrap();
        assert_eq!(copy, b"the little brain");

        for (user, id) in [("u2", "b1"), ("u1", "b2")] {
            assert!(open(&key, user, id, &nonce, &mut data.clone()).is_err());
        }
        let other = Key256::generate().unwrap();
        assert!(open(&other, "u1", "b1", &nonce, &mut data.clone()).is_err());
        let mut tampered = data.clone();
        tampered[0] ^= 1;
        assert!(open(&key, "u1", "b1", &nonce, &mut tampered).is_err());
    }
}
