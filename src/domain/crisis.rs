//! The crisis severity ladder (SPEC section 8), shared by the detector, the AI proxy's
//! answers and the configuration (`crisis.resource_level`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How much risk a message shows, in order: `none < low < medium < high`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CrisisLevel {
    None,
    Low,
    Medium,
    High,
}

impl CrisisLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CrisisLevel::None => "none",
            CrisisLevel::Low => "low",
            CrisisLevel::Medium => "medium",
            CrisisLevel::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<CrisisLevel> {
        match text {
            "none" => Some(CrisisLevel::None),
            "low" => Some(CrisisLevel::Low),
            "medium" => Some(CrisisLevel::Medium),
            "high" => Some(CrisisLevel::High),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(CrisisLevel::None < CrisisLevel::Low);
        assert!(CrisisLevel::Medium < CrisisLevel::High);
        for level in [
            CrisisLevel::None,
            CrisisLevel::Low,
            CrisisLevel::Medium,
            CrisisLevel::High,
        ] {
            assert_eq!(CrisisLevel::parse(level.as_str()), Some(level));
        }
    }
}
