//! Conversation search over 1,000,000 conversations (SPEC section 9): the corpus, built
//! once with persona's own migrations and cached, then searched through the real server.
//!
//! The corpus: 10,000 users owning 1,000,000 conversations (about half public), 2–6
//! messages each of English- or Indonesian-looking text. Words are drawn from a vocabulary
//! of 600,000 per language — real words at the head, generated ones in the tail — with a
//! Zipf-like law (rank `r` has probability ∝ 1/r), so there are words in most documents,
//! words in 5–20 % of them and words in about ten. The rows go in with plain `INSERT`s in
//! large transactions, with the migrations' triggers in place (they keep the FTS5 index and
//! the public counters, as in production). The data dir — database and the `secrets.toml`
//! persona writes on its first start — lives in `target/bench-cache/conversations-1m/vN`
//! with `corpus.json` (the build figures and the query terms, chosen from measured document
//! counts); a later run reuses it, searching a copy so the cache stays as built.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::{
    Report, call, free_addr, json_call,
    load::{self, Stats, Until, request},
    persona, persona_command, rps_line, wait_ready,
};

/// Bump when the corpus or the schema changes: a new version builds a new corpus.
const VERSION: &str = "v2";
const CONVERSATIONS: u32 = 1_000_000;
const USERS: u32 = 10_000;
/// Conversations per generated batch and per transaction.
const BATCH: u32 = 20_000;
/// Words per language (real words first, then generated ones).
const VOCABULARY: usize = 600_000;
/// The signed-in user (user 0 of the corpus) and its password.
const EMAIL: &str = "search@bench.example";
const PASSWORD: &str = "password123";

/// A deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Zipf-like rank in `0..n`: `floor((n+1)^u) - 1`, i.e. P(r) ∝ ln((r+2)/(r+1)) ≈ 1/r.
    fn zipf(&mut self, n: usize) -> usize {
        let r = ((n as f64 + 1.0).powf(self.unit())).floor() as usize;
        r.saturating_sub(1).min(n - 1)
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let a = (a & !0xf000) | 0x4000; // version 4
        let b = (b & !(0xc << 60)) | (0x8 << 60); // RFC 4122 variant
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Frequent English words, roughly most frequent first (function words, then the topics
/// people ask an assistant about).
const ENGLISH: &str = "the to and a of you i is it in that for this can with be on your my do how what are \
    not have if or so but me as at would about will like use some an from could should \
    more there when one make which also all time want help just get need they by good way \
    here we think know than work then into them each other really may sure try best thanks \
    data code example first new write better day people different because question \
    function problem idea start without might still again something explain story simple \
    keep small step look list feel great important file over write money python error \
    learn water plan change health recipe morning sleep travel rust value number answer \
    letter project team book music garden coffee email budget meeting chapter poem server \
    database query string energy planet history friend family weekend city train flight \
    hotel market price design color image model research theory memory habit exercise \
    doctor dinner chicken rice bread interview salary career resume essay grammar language \
    science physics chemistry climate ocean mountain river forest winter summer holiday \
    ticket museum philosophy ethics meaning freedom justice joke pun riddle game puzzle \
    painting drawing guitar piano song lyrics novel character dialogue scene invoice taxes \
    savings loan stocks crypto rent apartment kitchen oven garlic onion tomato pasta \
    cheese dessert chocolate anxiety stress therapy partner wedding birthday gift deadline \
    manager promotion startup marketing customer website javascript typescript docker \
    linux network compiler algorithm recursion thread async pointer vector matrix \
    statistics probability equation galaxy telescope volcano earthquake dinosaur evolution";

/// Frequent Indonesian words, roughly most frequent first.
const INDONESIAN: &str = "yang dan di itu ini saya untuk dengan tidak ada ke dari bisa kamu apa akan juga atau \
    anda jadi kalau sudah lebih bagaimana karena harus mau sangat seperti dalam cara pada \
    aku banyak baik hari orang masih hanya tapi bagus boleh coba terima kasih tolong perlu \
    supaya agar jika setiap sekarang nanti waktu sama semua mungkin memang sedang pernah \
    belum contoh buat membuat bikin tulis kerja belajar makan minum rumah uang teman \
    keluarga anak ibu bapak sekolah kantor kota jalan pagi malam siang minggu bulan tahun \
    cerita pertanyaan jawaban masalah ide rencana resep nasi goreng ayam sambal kopi teh \
    gula garam bawang pedas enak murah mahal harga pasar toko beli jual gaji tabungan \
    pinjaman pajak bisnis usaha pelanggan pemasaran aplikasi kode program komputer \
    internet data server galat fungsi variabel liburan pantai gunung pulau kereta pesawat \
    tiket hotel wisata budaya bahasa sejarah ilmu buku novel puisi lagu musik gambar \
    lukisan warna olahraga sepak bola kesehatan dokter obat tidur stres cemas pacar \
    menikah pernikahan ulang hadiah kado lucu lelucon tebakan hujan banjir panas dingin \
    alam hutan sungai laut ikan sapi kambing padi sawah petani desa kampung jakarta \
    bandung surabaya bali yogyakarta medan makassar lebaran puasa mudik arisan gotong \
    royong skripsi kuliah dosen mahasiswa ujian nilai tugas rapat";

const CATEGORY_WEIGHTS: &[(&str, u32)] = &[
    ("general", 20),
    ("coding", 18),
    ("writing", 8),
    ("learning", 9),
    ("science", 5),
    ("work", 8),
    ("health", 5),
    ("relationships", 4),
    ("creativity", 4),
    ("philosophy", 2),
    ("food", 6),
    ("travel", 4),
    ("finance", 4),
    ("humor", 2),
    ("other", 1),
];

const TAGS: &str = "python rust javascript sql linux homework essay poem story recipe kopi resep budget \
    investasi career interview sleep fitness travel liburan bali jakarta history physics \
    math ai ideas journal letter email translate grammar bahasa jokes music gift wedding \
    parenting startup marketing";

/// One language's words: real ones, then generated ones, `VOCABULARY` in all.
struct Vocabulary {
    words: Vec<String>,
}

impl Vocabulary {
    fn new(head: &str, indonesian: bool) -> Vocabulary {
        let mut seen: HashSet<String> = HashSet::with_capacity(VOCABULARY * 2);
        let mut words = Vec::with_capacity(VOCABULARY);
        for w in head.split_whitespace() {
            if seen.insert(w.to_owned()) {
                words.push(w.to_owned());
            }
        }
        let mut rng = Rng(if indonesian { 0x1d0 } else { 0xe4 });
        while words.len() < VOCABULARY {
            let w = if indonesian {
                pseudo_indonesian(&mut rng)
            } else {
                pseudo_english(&mut rng)
            };
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        Vocabulary { words }
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

fn pseudo_english(rng: &mut Rng) -> String {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br",
        "cl", "cr", "dr", "fl", "gr", "pl", "pr", "sh", "st", "str", "th", "tr", "ch", "sp",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ea", "ou", "ai", "io", "y"];
    const CODAS: &[&str] = &[
        "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck", "m", "x", "rt", "ll",
    ];
    const ENDINGS: &[&str] = &[
        "", "", "", "", "ing", "ed", "er", "ly", "tion", "ness", "able", "ment", "ist", "ous",
    ];
    let syllables = rng.range(1, 3);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(pick(rng, ONSETS));
        w.push_str(pick(rng, VOWELS));
        w.push_str(pick(rng, CODAS));
    }
    w.push_str(pick(rng, ENDINGS));
    w
}

fn pseudo_indonesian(rng: &mut Rng) -> String {
    const PREFIXES: &[&str] = &[
        "", "", "", "", "me", "mem", "men", "ber", "di", "ter", "pe", "ke",
    ];
    const ONSETS: &[&str] = &[
        "", "b", "c", "d", "g", "h", "j", "k", "l", "m", "n", "ng", "ny", "p", "r", "s", "t", "w",
        "y",
    ];
    const VOWELS: &[&str] = &["a", "a", "i", "u", "e", "o"];
    const CODAS: &[&str] = &["", "", "", "n", "ng", "r", "k", "s", "t", "h", "l", "m"];
    const SUFFIXES: &[&str] = &["", "", "", "", "kan", "an", "nya", "lah", "i"];
    let syllables = rng.range(2, 3);
    let mut w = String::from(pick(rng, PREFIXES));
    for _ in 0..syllables {
        w.push_str(pick(rng, ONSETS));
        w.push_str(pick(rng, VOWELS));
        w.push_str(pick(rng, CODAS));
    }
    w.push_str(pick(rng, SUFFIXES));
    w
}

/// One generated conversation.
struct Conversation {
    id: String,
    owner: u32,
    title: String,
    messages: String,
    excerpt: String,
    category: &'static str,
    tags: Vec<&'static str>,
    public: bool,
    featured: bool,
    message_count: i64,
    created_at: i64,
    updated_at: i64,
}

/// Document frequencies by language and rank, counted as the corpus is generated.
struct Frequencies {
    by_language: [Vec<u32>; 2],
}

struct Generator {
    rng: Rng,
    languages: [Vocabulary; 2],
    categories: Vec<&'static str>,
    tags: Vec<&'static str>,
    start: i64,
}

impl Generator {
    fn sentence(&mut self, language: usize, out: &mut String, seen: &mut Vec<u32>) {
        let words = self.rng.range(5, 15);
        let mut first = true;
        for i in 0..words {
            let rank = self.rng.zipf(VOCABULARY);
            seen.push(rank as u32);
            let word = &self.languages[language].words[rank];
            if !first {
                out.push(' ');
            }
            if first {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    out.extend(c.to_uppercase());
                    out.push_str(chars.as_str());
                }
                first = false;
            } else {
                out.push_str(word);
            }
            if i + 1 < words && self.rng.chance(0.08) {
                out.push(',');
            }
        }
        out.push(if self.rng.chance(0.2) { '?' } else { '.' });
    }

    fn conversation(&mut self, n: u32, freq: &mut Frequencies) -> Conversation {
        let language = usize::from(self.rng.chance(0.35));
        let mut seen = Vec::with_capacity(160);
        // A title: 3–7 words past the 20 most frequent (titles carry topics).
        let title_words = self.rng.range(3, 7);
        let mut title = String::new();
        for i in 0..title_words {
            let rank = loop {
                let r = self.rng.zipf(VOCABULARY);
                if r >= 20 {
                    break r;
                }
            };
            seen.push(rank as u32);
            let word = &self.languages[language].words[rank];
            if i == 0 {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    title.extend(c.to_uppercase());
                    title.push_str(chars.as_str());
                }
            } else {
                title.push(' ');
                title.push_str(word);
            }
        }
        let count = self.rng.range(2, 6);
        let mut messages = Vec::with_capacity(count as usize);
        for m in 0..count {
            let assistant = m % 2 == 1;
            let sentences = if assistant {
                self.rng.range(2, 5)
            } else {
                self.rng.range(1, 2)
            };
            let mut content = String::new();
            for s in 0..sentences {
                if s > 0 {
                    content.push(' ');
                }
                self.sentence(language, &mut content, &mut seen);
            }
            messages.push(json!({
                "role": if assistant { "assistant" } else { "user" },
                "content": content,
            }));
        }
        seen.sort_unstable();
        seen.dedup();
        for rank in seen {
            freq.by_language[language][rank as usize] += 1;
        }
        let excerpt = excerpt(messages[0]["content"].as_str().unwrap_or(""));
        let category = self.categories[self.rng.below(self.categories.len() as u64) as usize];
        let mut tags: Vec<&'static str> = Vec::new();
        for _ in 0..self.rng.range(0, 3) {
            let tag = pick(&mut self.rng, &self.tags);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let public = self.rng.chance(0.5);
        // Two years of history, oldest first; some conversations edited later.
        let created_at = self.start + i64::from(n) * 63 + self.rng.below(60) as i64;
        let updated_at = if self.rng.chance(0.1) {
            created_at + self.rng.below(86_400 * 30) as i64
        } else {
            created_at
        };
        Conversation {
            id: self.rng.uuid(),
            owner: self.rng.below(u64::from(USERS)) as u32,
            title,
            messages: Value::Array(messages).to_string(),
            excerpt,
            category,
            tags,
            public,
            featured: public && self.rng.chance(0.001),
            message_count: count as i64,
            created_at,
            updated_at,
        }
    }
}

/// persona's excerpt of the first (user) message: whitespace flattened, ≤ 200 characters.
fn excerpt(first: &str) -> String {
    let flat: String = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 200 {
        return flat;
    }
    let cut: String = flat.chars().take(199).collect();
    format!("{}…", cut.trim_end())
}

/// The category slugs of config/conversations/categories.toml, repeated by weight.
fn categories(repo: &Path) -> anyhow::Result<Vec<&'static str>> {
    let path = repo.join("config/conversations/categories.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let slugs: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("slug"))
        .filter_map(|l| l.trim().strip_prefix('='))
        .map(|l| l.trim().trim_matches('"').to_owned())
        .collect();
    let mut weighted = Vec::new();
    for slug in slugs {
        let weight = CATEGORY_WEIGHTS
            .iter()
            .find(|(s, _)| *s == slug)
            .map_or(2, |(_, w)| *w);
        let slug: &'static str = Box::leak(slug.into_boxed_str());
        weighted.extend(std::iter::repeat_n(slug, weight as usize));
    }
    if weighted.is_empty() {
        bail!("no categories in {}", path.display());
    }
    Ok(weighted)
}

/// Where the corpus lives: `target/bench-cache/conversations-1m/`.
fn cache_root(bins: &Path) -> PathBuf {
    bins.parent()
        .unwrap_or(bins)
        .join("bench-cache")
        .join("conversations-1m")
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn db_err(e: persona::error::ApiError) -> anyhow::Error {
    anyhow!("database: {e:?}")
}

/// Builds the corpus into `dir` (a fresh directory); returns `corpus.json`'s content.
fn build(bins: &Path, repo: &Path, dir: &Path) -> anyhow::Result<Value> {
    let started = Instant::now();
    let mut config = persona::config::Config::default();
    config.storage.data_dir = dir.join("data");
    let (db, _) = persona::db::Db::open(&config).context("open the corpus database")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One argon2id hash with persona's own code and default parameters, shared by every
    // corpus user (only user 0 signs in).
    let hash = runtime
        .block_on(persona::auth::password::Passwords::new(&config.auth)?.hash(PASSWORD.to_owned()))
        .map_err(db_err)?;

    let mut rng = Rng(0x5eed);
    let users: Vec<String> = (0..USERS).map(|_| rng.uuid()).collect();
    let start = 1_700_000_000i64;
    db.blocking_write(|tx| {
        // A bulk loader's page cache (persona's connections keep SQLite's 2 MB default):
        // the list indexes take their inserts in owner order, all over the file.
        tx.pragma_update(None, "cache_size", -1_048_576)?;
        let mut stmt = tx.prepare(
            "INSERT INTO users (id, email, password_hash, display_name, email_verified,
                                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)",
        )?;
        for (i, id) in users.iter().enumerate() {
            let email = if i == 0 {
                EMAIL.to_owned()
            } else {
                format!("user{i}@bench.example")
            };
            stmt.execute((id, email, &hash, format!("User {i}"), start))?;
        }
        Ok(())
    })
    .map_err(db_err)?;

    eprintln!("  corpus: generating the vocabularies ({VOCABULARY} words per language) …");
    let categories = categories(repo)?;
    let (sender, receiver) = mpsc::sync_channel::<Vec<Conversation>>(4);
    let generator = std::thread::spawn(move || {
        let mut g = Generator {
            rng: Rng(0xc0ffee),
            languages: [
                Vocabulary::new(ENGLISH, false),
                Vocabulary::new(INDONESIAN, true),
            ],
            categories,
            tags: TAGS.split_whitespace().collect(),
            start,
        };
        let mut freq = Frequencies {
            by_language: [vec![0; VOCABULARY], vec![0; VOCABULARY]],
        };
        let mut n = 0;
        while n < CONVERSATIONS {
            let batch: Vec<Conversation> = (n..(n + BATCH).min(CONVERSATIONS))
                .map(|i| g.conversation(i, &mut freq))
                .collect();
            n += batch.len() as u32;
            if sender.send(batch).is_err() {
                break;
            }
        }
        (g.languages, freq)
    });

    let inserting = Instant::now();
    let mut done = 0u32;
    let mut bytes = 0u64;
    for batch in receiver {
        bytes += batch
            .iter()
            .map(|c| (c.title.len() + c.messages.len()) as u64)
            .sum::<u64>();
        db.blocking_write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO conversations (id, owner_id, title, messages, excerpt, category,
                        tags, visibility, is_featured, message_count, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut tag = tx.prepare_cached(
                "INSERT INTO conversation_tags (tag, seq, owner_id, visibility, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in &batch {
                let visibility = if c.public { "public" } else { "private" };
                let owner = &users[c.owner as usize];
                insert.execute((
                    &c.id,
                    owner,
                    &c.title,
                    &c.messages,
                    &c.excerpt,
                    c.category,
                    serde_json::to_string(&c.tags).unwrap_or_else(|_| "[]".into()),
                    visibility,
                    c.featured,
                    c.message_count,
                    c.created_at,
                    c.updated_at,
                ))?;
                let seq = tx.last_insert_rowid();
                for t in &c.tags {
                    tag.execute((t, seq, owner, visibility, c.updated_at))?;
                }
            }
            Ok(())
        })
        .map_err(db_err)?;
        done += batch.len() as u32;
        if done.is_multiple_of(100_000) {
            eprintln!(
                "  corpus: {done} conversations, {:.0}/s",
                f64::from(done) / inserting.elapsed().as_secs_f64()
            );
        }
    }
    let insert_seconds = inserting.elapsed().as_secs_f64();
    let (languages, freq) = generator
        .join()
        .map_err(|_| anyhow!("the generator panicked"))?;
    anyhow::ensure!(done == CONVERSATIONS, "only {done} conversations generated");

    let terms = choose_terms(&db, &languages, &freq)?;
    runtime.block_on(db.close());
    drop(db);

    // persona's first start on the data dir writes secrets.toml (and whatever else a first
    // start writes); a clean stop checkpoints the WAL into the file.
    first_start(bins, dir)?;

    let build_seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "version": VERSION,
        "conversations": CONVERSATIONS,
        "users": USERS,
        "email": EMAIL,
        "buildSeconds": build_seconds,
        "insertSeconds": insert_seconds,
        "insertRate": f64::from(CONVERSATIONS) / insert_seconds,
        "textBytes": bytes,
        "sizeBytes": dir_size(&dir.join("data")),
        "terms": terms,
    }))
}

/// Documents matching `expr` (an FTS5 expression), counted in the index.
fn fts_count(db: &persona::db::Db, expr: &str) -> anyhow::Result<i64> {
    db.blocking_write(|tx| {
        Ok(tx.query_row(
            "SELECT (SELECT count(*) FROM public_fts WHERE public_fts MATCH ?1)
                  + (SELECT count(*) FROM private_fts WHERE private_fts MATCH ?1)",
            [expr],
            |r| r.get(0),
        )?)
    })
    .map_err(db_err)
}

/// The query terms: rare words (about 10 documents), common words (5–20 % of documents)
/// and 2–3-letter prefixes of common words, each with the documents it matches as the
/// server will query it (the last word is also a prefix).
fn choose_terms(
    db: &persona::db::Db,
    languages: &[Vocabulary; 2],
    freq: &Frequencies,
) -> anyhow::Result<Value> {
    let n = f64::from(CONVERSATIONS);
    let as_queried = |w: &str| format!("{{title body}} : \"{w}\"*");
    let mut rare = Vec::new();
    let mut common = Vec::new();
    for (l, vocabulary) in languages.iter().enumerate() {
        // Rare: from the tail, 8–12 documents by the generator's count.
        let mut picked = 0;
        for rank in (1000..VOCABULARY).step_by(997) {
            if picked == 8 {
                break;
            }
            let df = freq.by_language[l][rank];
            if !(8..=12).contains(&df) {
                continue;
            }
            let word = &vocabulary.words[rank];
            let matches = fts_count(db, &as_queried(word))?;
            if matches <= 20 {
                rare.push(json!([word, matches]));
                picked += 1;
            }
        }
        // Common: real words in 5–20 % of all documents.
        let mut picked = 0;
        for (rank, word) in vocabulary.words.iter().enumerate().take(400) {
            let share = f64::from(freq.by_language[l][rank]) / n;
            if picked < 5 && (0.05..=0.20).contains(&share) && word.len() >= 4 {
                let matches = fts_count(db, &as_queried(word))?;
                common.push(json!([word, matches]));
                picked += 1;
            }
        }
    }
    let mut prefix = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in common.iter().enumerate() {
        let word = c[0].as_str().unwrap_or("");
        let p: String = word.chars().take(2 + i % 2).collect();
        if seen.insert(p.clone()) {
            let matches = fts_count(db, &as_queried(&p))?;
            prefix.push(json!([p, matches]));
        }
    }
    Ok(json!({"rare": rare, "common": common, "prefix": prefix}))
}

fn first_start(bins: &Path, dir: &Path) -> anyhow::Result<()> {
    let addr = free_addr()?;
    let mut child = persona_command(bins, dir, addr, addr)
        .spawn()
        .context("start persona on the corpus")?;
    let ready = wait_ready(addr, "/health/ready", Duration::from_secs(60));
    // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait()?;
    ready?;
    anyhow::ensure!(
        status.success(),
        "persona on the corpus exited with {status}"
    );
    anyhow::ensure!(
        dir.join("data/secrets.toml").exists(),
        "persona wrote no secrets.toml"
    );
    Ok(())
}

/// Brings the cached corpus to the schema of this build (`persona migrate`, in place: a
/// new migration is applied once, not on every run's copy). Nothing to do takes a moment.
fn migrate(bins: &Path, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = persona(bins, dir, "migrate")
        // Why a migration failed is worth seeing.
        .stderr(std::process::Stdio::inherit())
        .status()
        .context("run persona migrate on the corpus")?;
    anyhow::ensure!(status.success(), "persona migrate on the corpus: {status}");
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!(
            "  conversation search: migrated the cached corpus in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The cached corpus, built first when missing: (its directory, corpus.json, built now).
fn corpus(bins: &Path, repo: &Path) -> anyhow::Result<(PathBuf, Value, bool)> {
    let root = cache_root(bins);
    let dir = root.join(VERSION);
    if let Ok(text) = std::fs::read_to_string(dir.join("corpus.json")) {
        return Ok((dir, serde_json::from_str(&text)?, false));
    }
    let building = root.join(format!("{VERSION}.building"));
    if building.exists() {
        std::fs::remove_dir_all(&building)?;
    }
    std::fs::create_dir_all(&building)?;
    eprintln!(
        "  conversation search: building the 1 M corpus in {} (first run only; several minutes)",
        dir.display()
    );
    let info = build(bins, repo, &building)?;
    std::fs::write(
        building.join("corpus.json"),
        serde_json::to_string_pretty(&info)?,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&building, &dir)?;
    Ok((dir, info, true))
}

fn terms(info: &Value, class: &str) -> Vec<(String, i64)> {
    info["terms"][class]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| Some((t[0].as_str()?.to_owned(), t[1].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn hits(addr: SocketAddr, path: &str, token: &str) -> anyhow::Result<usize> {
    let (status, body) = call(addr, request("GET", addr, path, Some(token), None, ""))?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: Value = serde_json::from_slice(&body)?;
    Ok(v["items"].as_array().map_or(0, Vec::len))
}

/// Builds (first run) or reuses the corpus, starts persona on a copy and measures search
/// at 1 in flight per term class × scope, beside GET /health at 1 in flight.
pub fn measure(bins: &Path, repo: &Path, d: Duration, report: &mut Report) -> anyhow::Result<()> {
    let (dir, info, built) = corpus(bins, repo)?;
    migrate(bins, &dir)?;
    let gb = dir_size(&dir.join("data")) as f64 / 1e9;
    report.add(
        "conversation search corpus: 1 M conversations, 10,000 users, ≈ half public, 2–6 messages (EN + ID)",
        format!(
            "{} in {:.0} s ({:.0} conversations/s inserted with the triggers), {:.2} GB on disk now ({:.2} GB of title + message text)",
            if built { "built this run" } else { "cached; built" },
            info["buildSeconds"].as_f64().unwrap_or(0.0),
            info["insertRate"].as_f64().unwrap_or(0.0),
            gb,
            info["textBytes"].as_f64().unwrap_or(0.0) / 1e9,
        ),
        "—".into(),
        "—".into(),
        "built once, cached",
    );

    // A copy, so sessions and whatever else a start writes never reach the cache.
    let run = tempfile::tempdir_in(dir.parent().unwrap_or(&dir))?;
    let copying = Instant::now();
    copy_dir(&dir.join("data"), &run.path().join("data"))?;
    eprintln!(
        "  conversation search: copied the corpus in {:.1} s",
        copying.elapsed().as_secs_f64()
    );
    let addr = free_addr()?;
    let mut command = persona_command(bins, run.path(), addr, addr);
    command.env("PERSONA_RATE_LIMIT__SEARCH_PER_MINUTE", "1000000000");
    let persona = crate::Proc {
        child: command.spawn().context("start persona on the corpus")?,
        addr,
    };
    wait_ready(persona.addr, "/health/ready", Duration::from_secs(60))?;
    let login = json_call(
        addr,
        "POST",
        "/api/v1/auth/login",
        None,
        json!({"email": EMAIL, "password": PASSWORD}),
    )?;
    let token: Arc<str> = login["accessToken"].as_str().context("accessToken")?.into();

    let health = load::run(
        addr,
        1,
        d,
        Until::Body,
        Arc::new(move |_| request("GET", addr, "/health", None, None, "")),
    );
    report.add(
        "GET /health, 1 in flight, on the corpus server (the floor of the search rows)",
        rps_line(&health),
        "—".into(),
        "—".into(),
        "—",
    );

    let classes = [
        ("rare", "rare word"),
        ("common", "common word"),
        ("prefix", "2–3-letter prefix of common words"),
    ];
    for (class, label) in classes {
        let words = terms(&info, class);
        if words.is_empty() {
            bail!("corpus.json has no {class} terms");
        }
        let shown: Vec<String> = words
            .iter()
            .take(4)
            .map(|(w, n)| format!("\"{w}\" {}", docs(*n)))
            .collect();
        for scope in ["mine", "public", "all"] {
            let paths: Arc<Vec<String>> = Arc::new(
                words
                    .iter()
                    .map(|(w, _)| format!("/api/v1/conversations/search?q={w}&scope={scope}"))
                    .collect(),
            );
            // Warm-up, and what a page holds: each term once.
            let mut found = 0;
            for p in paths.iter() {
                found += hits(addr, p, &token)?;
            }
            let t = token.clone();
            let ps = paths.clone();
            let stats: Stats = load::run(
                addr,
                1,
                d,
                Until::Body,
                Arc::new(move |n| {
                    request("GET", addr, &ps[n as usize % ps.len()], Some(&t), None, "")
                }),
            );
            report.add(
                &format!(
                    "search, {label} ({} terms: {}{}), scope={scope}, 1 in flight",
                    words.len(),
                    shown.join(", "),
                    if words.len() > 4 { ", …" } else { "" }
                ),
                format!(
                    "{}; {} requests, {:.1} hits per page",
                    rps_line(&stats),
                    stats.requests,
                    found as f64 / paths.len() as f64
                ),
                format!(
                    "/health: p50 {:.2} ms, p99 {:.2} ms",
                    health.p50(),
                    health.p99()
                ),
                "—".into(),
                "p99 ≤ 50 ms",
            );
        }
    }
    drop(persona);
    Ok(())
}

fn docs(n: i64) -> String {
    if n >= 10_000 {
        format!("{:.1} %", n as f64 / f64::from(CONVERSATIONS) * 100.0)
    } else {
        format!("{n} docs")
    }
}
