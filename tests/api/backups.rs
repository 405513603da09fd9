//! SPEC section 5: encrypted backups.
