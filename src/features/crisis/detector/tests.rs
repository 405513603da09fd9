//! Unit tests: SPEC section 8's examples and the detector's rules, one behaviour each.

use super::*;

thread_local! {
    static DETECTOR: Detector = Detector::builtin();
}

fn level(text: &str) -> CrisisLevel {
    DETECTOR.with(|d| d.assess(text).level)
}

fn assert_level(expected: CrisisLevel, texts: &[&str]) {
    for text in texts {
        assert_eq!(level(text), expected, "{text:?}");
    }
}

#[test]
fn builtin_lexicon_loads() {
    let detector = Detector::builtin();
    assert_eq!(detector.assess("").level, CrisisLevel::None);
    assert!(detector.assess("").categories.is_empty());
}

#[test]
fn from_dir_loads_the_shipped_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/crisis");
    let detector = Detector::from_dir(&dir).expect("lexicon dir loads");
    assert_eq!(
        detector.assess("i want to kill myself").level,
        CrisisLevel::High
    );
}

#[test]
fn from_dir_errors_name_the_file_and_the_problem() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/crisis");
    let dir = std::env::temp_dir().join(format!("crisis-lexicon-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ["normalize.toml", "idioms.toml", "id.toml"] {
        std::fs::copy(src.join(name), dir.join(name)).expect("copy lexicon file");
    }
    let missing = Detector::from_dir(&dir).err().expect("en.toml is missing");
    assert!(missing.to_string().contains("en.toml"), "{missing}");

    let bad = "[[rule]]\nlevel = \"high\"\ncategory = \"active_ideation\"\nphrases = [\"a (b\"]\n";
    std::fs::write(dir.join("en.toml"), bad).expect("write en.toml");
    let invalid = Detector::from_dir(&dir).err().expect("unclosed group");
    let message = invalid.to_string();
    assert!(
        message.contains("en.toml") && message.contains("missing ')'"),
        "{message}"
    );

    std::fs::write(dir.join("en.toml"), "[[rule]]\nlevel = \"severe\"\n").expect("write");
    let parse = Detector::from_dir(&dir).err().expect("unknown level");
    assert!(
        parse.to_string().contains("en.toml: invalid TOML"),
        "{parse}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn levels_follow_the_clinical_ladder() {
    assert_level(
        CrisisLevel::Low,
        &["i feel so sad and lonely", "aku capek banget"],
    );
    assert_level(
        CrisisLevel::Medium,
        &[
            "sometimes i wish i was dead",
            "nothing will ever get better",
            "aku cuma jadi beban",
        ],
    );
    assert_level(
        CrisisLevel::High,
        &[
            "i want to kill myself",
            "i have 30 pills and i'm going to take them all",
            "i wrote my goodbye letters",
            "i cut myself again tonight",
            "aku mau bunuh diri",
        ],
    );
}

#[test]
fn colloquial_indonesian_is_normalised() {
    assert!(level("capek banget pengen mati aja") >= CrisisLevel::Medium);
    assert_level(
        CrisisLevel::High,
        &["gw udh gak mau hidup lagi", "pgn bundir"],
    );
}

#[test]
fn whole_words_only_never_substrings() {
    assert_level(
        CrisisLevel::None,
        &[
            "berita pembunuhan di bekasi kemarin",
            "how do i skill myself up in python",
            "the killer whale documentary was great",
        ],
    );
}

#[test]
fn repeated_letters_and_misspellings_still_match() {
    assert_level(
        CrisisLevel::High,
        &["i wanna killl myselfff", "thinking about sucide every day"],
    );
    assert!(level("pleeease i want to dieee") >= CrisisLevel::Medium);
}

#[test]
fn idioms_are_not_risk() {
    assert_level(
        CrisisLevel::None,
        &[
            "this traffic is killing me",
            "dying of laughter",
            "I killed it",
            "i could murder a pizza",
            "mati ketawa liat video itu",
            "mati gaya",
            "mati lampu lagi",
            "hp gue mati",
            "lagi membunuh waktu di bandara",
            "mau mati rasanya nunggu antrian",
        ],
    );
}

#[test]
fn negation_and_reassurance_lower_a_match() {
    assert!(level("I would never hurt myself") <= CrisisLevel::Low);
    assert!(level("i'm not going to kill myself") <= CrisisLevel::Low);
    assert_eq!(
        level("aku tidak mau mati, aku cuma capek"),
        CrisisLevel::Low
    );
}

#[test]
fn negations_that_are_ideation_stay_risk() {
    assert_level(
        CrisisLevel::High,
        &[
            "I don't want to live anymore",
            "gak mau hidup lagi",
            "i dont want to exist anymore",
        ],
    );
    assert!(level("tidak ingin bangun lagi") >= CrisisLevel::Medium);
    assert!(level("I can't go on") >= CrisisLevel::Medium);
}

#[test]
fn a_negated_stopping_is_not_a_negation_of_what_follows() {
    for text in [
        "i can't stop thinking about ending it",
        "gak bisa berhenti mikirin bunuh diri",
    ] {
        DETECTOR.with(|d| {
            let explained = d.explain(text);
            assert!(!explained.contains("negated"), "{explained}");
        });
    }
}

#[test]
fn a_negated_word_that_is_no_risk_by_itself_explains_nothing_away() {
    // A negated wish, intent or time with no death word beside it ("i don't want advice")
    // is set aside; it must not veto the learned layer, as a negated risk phrase does.
    // A negated risk phrase, a reported death and a negated death word still explain their
    // risk away (`true`).
    DETECTOR.with(|d| {
        for (text, vetoes) in [
            (
                "i dont want advice. tonight i stop being a problem for everyone",
                false,
            ),
            (
                "i tried last year and failed. i'm not going to fail this time",
                false,
            ),
            (
                "besok malem aku naik kapal. ga beli tiket pulang, ga bakal nyampe juga",
                false,
            ),
            ("i never hoped to disappear", true),
            ("the news said the singer killed himself last night", true),
            ("i'm not dead yet lol", true),
        ] {
            let (_, _, verdicts, _) = d.lexicon_reading(text, |_, _| {});
            let vetoed = verdicts & super::model::VETO != 0;
            assert_eq!(vetoed, vetoes, "{}", d.explain(text));
        }
    });
}

#[test]
fn negation_does_not_cross_a_clause_or_a_new_subject() {
    assert!(level("no, i want to die") >= CrisisLevel::Medium);
    assert!(level("i don't know why i want to die") >= CrisisLevel::Medium);
}

#[test]
fn reported_and_educational_mentions_are_at_most_low() {
    for text in [
        "a documentary about suicide prevention",
        "statistik bunuh diri di indonesia",
        "the character in the book kills himself",
        "saw in the news that suicide rates went up",
    ] {
        assert!(level(text) <= CrisisLevel::Low, "{text:?}");
    }
}

#[test]
fn a_third_person_at_risk_is_medium_with_its_own_category() {
    let d = Detector::builtin();
    for text in [
        "my friend wants to kill herself",
        "temenku mau bunuh diri malam ini",
    ] {
        let a = d.assess(text);
        assert_eq!(a.level, CrisisLevel::Medium, "{text:?}");
        assert_eq!(a.categories, ["third_party"], "{text:?}");
    }
    // "ex" is no listed person word, but the writer ("i") is not right before the phrase:
    // still a third person at risk.
    let a = d.assess("i think my ex wants to die");
    assert_eq!(a.level, CrisisLevel::Medium);
    assert!(a.categories.contains(&"third_party"), "{a:?}");
    // The same phrases with the writer as their subject are the writer's own risk: not a
    // third person's, and not held to medium as one.
    for text in ["i want to die", "pleeease i want to dieee"] {
        let a = d.assess(text);
        assert!(a.level >= CrisisLevel::Medium, "{text:?}");
        assert!(!a.categories.contains(&"third_party"), "{text:?}: {a:?}");
    }
}

#[test]
fn means_weigh_more_than_the_word_suicide() {
    // The word alone is at least medium; the learned layer may read it as high (an
    // ambiguous message goes to the higher level).
    assert!(level("suicide") >= CrisisLevel::Medium);
    assert_eq!(level("i'm going to jump off the bridge"), CrisisLevel::High);
}

#[test]
fn categories_are_stable_names_most_severe_first() {
    let a = Detector::builtin().assess("i'm so tired, i bought a rope today");
    assert_eq!(a.level, CrisisLevel::High);
    assert_eq!(a.categories, ["means", "distress"]);
}

#[test]
fn a_wish_and_a_death_word_make_a_frame() {
    // Not listed as phrases: the wish and the death word are combined by structure.
    assert_level(
        CrisisLevel::Medium,
        &[
            "lowkey hoping i never wake up",
            "i keep praying i could vanish",
            "kadang berharap bisa lenyap",
        ],
    );
    assert_level(
        CrisisLevel::High,
        &[
            "i am ready to end things for good",
            "udah mutusin mau loncat dari flyover",
            "i want to die, i have the pills right here",
        ],
    );
}

#[test]
fn a_frame_follows_negation_subject_and_context() {
    assert_eq!(level("i never hoped to disappear"), CrisisLevel::Low);
    assert_eq!(
        level("my brother is planning to end things"),
        CrisisLevel::Medium
    );
    assert_eq!(
        level("for my psych class: how do people decide to end their life"),
        CrisisLevel::None
    );
}

#[test]
fn means_with_an_amount_or_a_method_question_are_high() {
    assert_level(
        CrisisLevel::High,
        &[
            "i've got the tablets, all of them counted out",
            "obat tidur udah aku siapin, mau aku habisin semua",
            "i want to die, how much insulin would it take",
        ],
    );
    assert_level(
        CrisisLevel::None,
        &[
            "how many tablets of paracetamol can i take for a headache",
            "aku mau beli obat flu malam ini",
        ],
    );
}

#[test]
fn a_welcomed_death_is_a_passive_wish() {
    assert_level(
        CrisisLevel::Medium,
        &[
            "if the plane didn't survive the storm i'd honestly be relieved",
            "kalau aku meninggal pas tidur juga gak apa-apa",
        ],
    );
}

#[test]
fn reassurance_leaves_distress() {
    assert_level(
        CrisisLevel::Low,
        &[
            "suicide is not an option for me, i'm just sad",
            "bunuh diri bukan pilihan, cuma lagi capek",
        ],
    );
}

#[test]
fn the_safety_net_catches_wordings_no_phrase_foresaw() {
    assert_level(
        CrisisLevel::Medium,
        &["nobody would notice if i stopped existing"],
    );
    // Alone at a height: at least medium (the learned layer reads it as high, as the
    // labelled set does for a person at the place).
    assert!(level("lagi di atap kosan sendirian") >= CrisisLevel::Medium);
    // Two kinds at once, a means with a time or a goodbye, are high.
    assert_level(
        CrisisLevel::High,
        &[
            "the rope is in my closet, tonight",
            "i keep burning my arm with a lighter",
            "racun tikus udah aku beli, besok aku pamit",
        ],
    );
}

#[test]
fn the_safety_net_keeps_out_of_games_kitchens_phones_and_idioms() {
    assert_level(
        CrisisLevel::None,
        &[
            "in fortnite is it better to jump from the bus early or late",
            "my phone keeps dying at 30%, is the battery shot?",
            "pisau dapur tumpul, cara asahnya gimana",
            "aku nitip beliin martabak ya",
            "gantungan kunci aku hilang, beli dimana ya",
            "nanti malam aku nyusul ke cafe ya",
        ],
    );
    // A negated net word is not a risk, but talking about it is still distress.
    assert_level(CrisisLevel::Low, &["aku tidak mau mati"]);
}

/// Short everyday requests to an assistant: the model alone must not raise them (a
/// candidate model read "what is in this picture?", the API tests' image question, as
/// medium; see the data README on heldout14).
#[test]
fn short_requests_to_an_assistant_are_not_risk() {
    assert_level(
        CrisisLevel::None,
        &[
            "what is in this picture?",
            "be brief",
            "aku mau beli obat flu malam ini",
        ],
    );
}

/// SPEC 8's quality bar on the labelled set (`tests/data/crisis/`, see its README): on every
/// file and on the whole set, `high` detected at ≥ medium in at least 95 % of cases and
/// `none` at ≥ medium in at most 5 %, but for the files held to their own bars
/// (`quality::OWN_BARS`). `cargo test quality -- --nocapture` prints the matrices.
///
/// The model is trained on every file here but `heldout5.jsonl` and `heldout6.jsonl`, on
/// which its `>= medium` thresholds are chosen (at most 4 % false alarms over the two), and
/// the files of `OWN_BARS`. How the model does on authors it never read is measured outside
/// `cargo test`: `examples/crisis_train -- --lofo`, and once per candidate on `untouched/`
/// (see the data README; issue 11).
#[test]
fn quality_on_the_labelled_set_meets_the_thresholds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crisis");
    let detector = Detector::builtin();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the labelled files: {files:?}");
    let mut overall = quality::Matrix::default();
    let mut failures = Vec::new();
    let mut total = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let examples = quality::load(path).unwrap();
        total += examples.len();
        let (matrix, _) = quality::evaluate(&detector, &examples);
        println!("{}", matrix.render(&name));
        failures.extend(matrix.failures(&name));
        overall.merge(&matrix);
    }
    println!("{}", overall.render("combined"));
    failures.extend(overall.failures("combined"));
    assert!(total >= 400, "{total} labelled messages");
    assert!(failures.is_empty(), "{}", failures.join("; "));
}

/// The commonest messages an assistant gets are short everyday requests and follow-ups
/// ("shorter pls", "what's in this screenshot", "number them"): the everyday-chat files,
/// each by an author who read nothing of the project and never trained on (their twin
/// `ordinary_requests.jsonl` is), are held to fewer false alarms than SPEC 8's 5 %
/// (`quality::OWN_BARS`: 2 %, and a measured floor for small talk and one-word reactions).
#[test]
fn everyday_requests_to_an_assistant_raise_almost_no_alarms() {
    let detector = Detector::builtin();
    let mut failures = Vec::new();
    for name in ["ordinary_requests2.jsonl", "ordinary_requests3.jsonl"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/crisis")
            .join(name);
        let examples = quality::load(&path).unwrap();
        assert!(examples.len() >= 400, "{name}: {} requests", examples.len());
        let (matrix, _) = quality::evaluate(&detector, &examples);
        println!("{}", matrix.render(name));
        assert!(
            quality::bars(name).1 < quality::MAX_FALSE_ALARMS,
            "{name}: its own bar"
        );
        failures.extend(matrix.failures(name));
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
