//! The stable names of what counted in an assessment.

use serde::Deserialize;

/// What a rule's phrases are about; `as_str` gives the stable name in an assessment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Category {
    Distress,
    Hopelessness,
    Burden,
    PassiveIdeation,
    ThirdParty,
    Mention,
    ActiveIdeation,
    Plan,
    Means,
    Preparatory,
    SelfHarm,
}

impl Category {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Distress => "distress",
            Category::Hopelessness => "hopelessness",
            Category::Burden => "burden",
            Category::PassiveIdeation => "passive_ideation",
            Category::ThirdParty => "third_party",
            Category::Mention => "mention",
            Category::ActiveIdeation => "active_ideation",
            Category::Plan => "plan",
            Category::Means => "means",
            Category::Preparatory => "preparatory",
            Category::SelfHarm => "self_harm",
        }
    }
}
