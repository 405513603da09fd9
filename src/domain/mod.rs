//! The shared vocabulary: the small types every feature speaks in, defined once. Features
//! import these, never each other's. Each type parses its input at the edge (`parse`
//! returns the value or a message for the field) so code inside can trust it.

mod crisis;
mod cursor;
mod email;
mod ids;
mod secret;
mod time;

pub use crisis::CrisisLevel;
pub use cursor::Cursor;
pub use email::Email;
pub use ids::{DeviceId, parse_uuid};
pub use secret::Secret;
pub use time::Timestamp;
