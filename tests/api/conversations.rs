//! SPEC section 9: conversations — saving, ownership, lists with keyset paging, featured
//! picks, categories and stats, and full-text search that hostile input cannot break.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, assert_error, expect_json};

const URL: &str = "/api/v1/conversations";

fn conversation(title: &str, text: &str, public: bool) -> Value {
    json!({
        "title": title,
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": "Here is what I think."},
        ],
        "category": "coding",
        "tags": ["Rust", "async"],
        "visibility": if public { "public" } else { "private" },
    })
}

async fn create(app: &TestApp, s: &Session, body: Value) -> Value {
    app.call(Method::POST, URL)
        .bearer(&s.access)
        .json(&body)
        .expect(StatusCode::CREATED)
        .await
}

async fn search(app: &TestApp, s: Option<&Session>, query: &str) -> Value {
    let path = format!("{URL}/search?{query}");
    let call = app.call(Method::GET, &path);
    let call = match s {
        Some(s) => call.bearer(&s.access),
        None => call,
    };
    call.expect(StatusCode::OK).await
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_conversation_is_saved_and_read_back() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let saved = create(
        &app,
        &ana,
        conversation("Borrowing in Rust", "How do lifetimes work?", false),
    )
    .await;
    assert_eq!(saved["title"], "Borrowing in Rust");
    assert_eq!(saved["messageCount"], 2);
    assert_eq!(saved["tags"], json!(["rust", "async"]));
    assert_eq!(saved["visibility"], "private");
    assert_eq!(saved["isFeatured"], false);
    assert_eq!(saved["excerpt"], "How do lifetimes work?");
    assert_eq!(saved["owner"]["id"], ana.user["id"]);
    assert_eq!(saved["messages"][1]["role"], "assistant");

    let id = saved["id"].as_str().unwrap();
    let path = format!("{URL}/{id}");
    let read = app
        .call(Method::GET, &path)
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(read["messages"], saved["messages"]);

    // The fields given replace the stored ones; the others stay.
    let updated = app
        .call(Method::PUT, &path)
        .bearer(&ana.access)
        .json(&json!({"title": "Lifetimes", "visibility": "public"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(updated["title"], "Lifetimes");
    assert_eq!(updated["visibility"], "public");
    assert_eq!(updated["messages"], saved["messages"]);
    // Public now: anyone reads it, without a token.
    expect_json(app.get(&path).await, StatusCode::OK).await;
}

#[tokio::test]
async fn bad_input_is_refused_field_by_field() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    assert_error(
        app.post_json(URL, &conversation("t", "x", false)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let long = "x".repeat(201);
    for (body, field) in [
        (
            json!({"title": "", "messages": [{"role": "user", "content": "x"}]}),
            "title",
        ),
        (
            json!({"title": long, "messages": [{"role": "user", "content": "x"}]}),
            "title",
        ),
        (json!({"title": "t", "messages": []}), "messages"),
        (
            json!({"title": "t", "messages": [{"role": "robot", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"title": "t", "messages": [{"role": "user", "content": "x"}], "category": "nope"}),
            "category",
        ),
        (
            json!({"title": "t", "messages": [{"role": "user", "content": "x"}], "tags": ["a b"]}),
            "tags",
        ),
        (
            json!({"title": "t", "messages": [{"role": "user", "content": "x"}],
                "tags": ["1","2","3","4","5","6","7","8","9","10","11"]}),
            "tags",
        ),
        (
            json!({"title": "t", "messages": [{"role": "user", "content": "x"}], "visibility": "secret"}),
            "visibility",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "title",
        ),
    ] {
        let error = assert_error(
            app.post_as(&ana.access, URL, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"][field].is_array(), "{field}: {error}");
    }
    // Over 1 MiB of text is 422; over the router's 2 MiB body limit is 413.
    let big = "y".repeat(1024 * 1024 + 10);
    assert_error(
        app.post_as(
            &ana.access,
            URL,
            &json!({"title": "t", "messages": [{"role": "user", "content": big}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let huge = "z".repeat(2 * 1024 * 1024 + 10);
    assert_error(
        app.post_as(
            &ana.access,
            URL,
            &json!({"title": "t", "messages": [{"role": "user", "content": huge}]}),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Between the server's 1 MiB default and this router's 2 MiB: accepted.
    let fits = "w".repeat(1024 * 1024 - 100);
    create(
        &app,
        &ana,
        json!({"title": "big", "messages": [{"role": "user", "content": fits}]}),
    )
    .await;
}

#[tokio::test]
async fn another_users_private_conversation_is_404_everywhere() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let secret = create(
        &app,
        &ana,
        conversation("Diary", "zebracorn secrets", false),
    )
    .await;
    let path = format!("{URL}/{}", secret["id"].as_str().unwrap());
    for response in [
        app.get_as(&bob.access, &path).await,
        app.get(&path).await,
        app.put_as(&bob.access, &path, &json!({"title": "mine"}))
            .await,
        app.delete_as(&bob.access, &path).await,
        app.get_as(&bob.access, &format!("{URL}/not-a-uuid")).await,
    ] {
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    for scope in ["mine", "public", "all"] {
        let found = search(&app, Some(&bob), &format!("q=zebracorn&scope={scope}")).await;
        assert!(ids(&found).is_empty(), "{scope}: {found}");
    }
    let mine = search(&app, Some(&ana), "q=zebracorn&scope=mine").await;
    assert_eq!(ids(&mine), [secret["id"].as_str().unwrap()]);
    assert!(ids(&search(&app, Some(&ana), "q=zebracorn&scope=public").await).is_empty());
    assert!(ids(&search(&app, None, "q=zebracorn").await).is_empty());
}

#[tokio::test]
async fn public_reads_need_no_token_but_a_bad_token_is_401() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    create(&app, &ana, conversation("Open", "hello world", true)).await;
    create(&app, &ana, conversation("Closed", "hello moon", false)).await;
    let public = expect_json(app.get(URL).await, StatusCode::OK).await;
    assert_eq!(public["items"].as_array().unwrap().len(), 1);
    assert!(
        public["items"][0].get("messages").is_none(),
        "summaries only"
    );
    let mine = app
        .call(Method::GET, URL)
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    for path in [
        URL.to_string(),
        format!("{URL}/featured"),
        format!("{URL}/categories"),
        format!("{URL}/stats"),
        format!("{URL}/search?q=hello"),
    ] {
        assert_error(
            app.get_as("not-a-token", &path).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    assert_error(
        app.get(&format!("{URL}?scope=mine")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.get(&format!("{URL}?scope=everything")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn pages_are_stable_while_rows_are_added() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let c = create(&app, &ana, conversation(&format!("c{i}"), "text", false)).await;
        made.push(c["id"].as_str().unwrap().to_owned());
    }
    let first = app
        .call(Method::GET, &format!("{URL}?limit=2"))
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    // Newer conversations arrive while the client pages on.
    create(&app, &ana, conversation("late", "text", false)).await;
    let mut seen = ids(&first);
    let mut cursor = first["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let next = app
            .call(Method::GET, &format!("{URL}?limit=2&cursor={c}"))
            .bearer(&ana.access)
            .expect(StatusCode::OK)
            .await;
        seen.extend(ids(&next));
        cursor = next["nextCursor"].as_str().map(str::to_owned);
    }
    made.reverse();
    assert_eq!(
        seen, made,
        "newest first, each once, the late one not in this walk"
    );
    assert_error(
        app.get_as(&ana.access, &format!("{URL}?cursor=garbage"))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn category_and_tag_filters_categories_and_stats() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    create(&app, &ana, conversation("a", "x", true)).await;
    let mut cooking = conversation("b", "y", true);
    cooking["category"] = json!("food");
    cooking["tags"] = json!(["pasta"]);
    create(&app, &ana, cooking).await;
    create(&app, &bob, conversation("c", "z", false)).await;

    let food = expect_json(
        app.get(&format!("{URL}?category=food")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(food["items"].as_array().unwrap().len(), 1);
    let pasta = expect_json(app.get(&format!("{URL}?tag=Pasta")).await, StatusCode::OK).await;
    assert_eq!(pasta["items"][0]["title"], "b");
    let rust = app
        .call(Method::GET, &format!("{URL}?scope=mine&tag=rust"))
        .bearer(&bob.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(rust["items"][0]["title"], "c");

    let categories = expect_json(app.get(&format!("{URL}/categories")).await, StatusCode::OK).await;
    let count = |slug: &str| {
        categories
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["slug"] == slug)
            .unwrap()["count"]
            .clone()
    };
    assert_eq!(
        (count("coding"), count("food"), count("travel")),
        (json!(1), json!(1), json!(0))
    );

    let stats = app
        .call(Method::GET, &format!("{URL}/stats"))
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(stats["mine"]["total"], 2);
    assert_eq!(stats["mine"]["messages"], 4);
    assert_eq!(stats["mine"]["public"], 2);
    assert_eq!(stats["mine"]["byCategory"], json!({"coding": 1, "food": 1}));
    assert_eq!(stats["public"], json!({"total": 2, "messages": 4}));
    let anonymous = expect_json(app.get(&format!("{URL}/stats")).await, StatusCode::OK).await;
    assert_eq!(anonymous["mine"], Value::Null);
}

#[tokio::test]
async fn admins_feature_and_delete_users_do_not() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let root = app.admin("root@example.com").await;
    let public = create(&app, &ana, conversation("Pub", "x", true)).await;
    let private = create(&app, &ana, conversation("Priv", "x", false)).await;
    let featured = |c: &Value| format!("{URL}/{}/featured", c["id"].as_str().unwrap());

    assert_error(
        app.call(Method::PATCH, &featured(&public))
            .bearer(&ana.access)
            .json(&json!({"featured": true}))
            .send()
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.call(Method::PATCH, &featured(&private))
            .bearer(&root.access)
            .json(&json!({"featured": true}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let picked = app
        .call(Method::PATCH, &featured(&public))
        .bearer(&root.access)
        .json(&json!({"featured": true}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(picked["isFeatured"], true);
    let list = expect_json(app.get(&format!("{URL}/featured")).await, StatusCode::OK).await;
    assert_eq!(ids(&list), [public["id"].as_str().unwrap()]);

    // Made private, it is no longer featured.
    let path = format!("{URL}/{}", public["id"].as_str().unwrap());
    let hidden = app
        .call(Method::PUT, &path)
        .bearer(&ana.access)
        .json(&json!({"visibility": "private"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(hidden["isFeatured"], false);
    let list = expect_json(app.get(&format!("{URL}/featured")).await, StatusCode::OK).await;
    assert!(ids(&list).is_empty());

    // An admin may delete anyone's conversation.
    assert_eq!(
        app.delete_as(&root.access, &path).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.get_as(&ana.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn search_ranks_titles_first_and_matches_prefixes_and_accents() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let in_body = create(
        &app,
        &ana,
        conversation("Weekend plans", "we talked about the tokio runtime", true),
    )
    .await;
    let in_title = create(
        &app,
        &ana,
        conversation("Tokio runtime internals", "a long chat", true),
    )
    .await;
    let found = search(&app, None, "q=tokio").await;
    assert_eq!(
        ids(&found),
        [
            in_title["id"].as_str().unwrap(),
            in_body["id"].as_str().unwrap()
        ],
        "the title counts more"
    );
    assert!(
        found["items"][1]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>tokio</mark>")
    );
    assert!(found["items"][0].get("messages").is_none());

    // The last word is also a prefix (two characters or more).
    assert_eq!(ids(&search(&app, None, "q=runti").await).len(), 2);
    assert!(ids(&search(&app, None, "q=talked%20ab").await).len() == 1);

    // Diacritics fold: café finds cafe and the other way round.
    create(&app, &ana, conversation("Kopi di café", "ngopi pagi", true)).await;
    assert_eq!(ids(&search(&app, None, "q=cafe").await).len(), 1);
    assert_eq!(ids(&search(&app, None, "q=caf%C3%A9").await).len(), 1);
}

#[tokio::test]
async fn hostile_search_strings_never_break_it() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    create(
        &app,
        &ana,
        conversation(
            "multi-agent systems",
            "don't panic <script>alert(1)</script>",
            true,
        ),
    )
    .await;
    let long = "a".repeat(5000);
    for q in [
        "multi-agent",
        "don't",
        "\"",
        "title:x",
        "a OR b",
        "NEAR(a b)",
        "*",
        "scope:zvpublic",
        "zvprivate",
        "\u{E000}mark",
        long.as_str(),
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let response = app.get(&format!("{URL}/search?q={encoded}")).await;
        assert!(
            response.status().is_success() || response.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{q:.40}: {}",
            response.status()
        );
    }
    let found = search(&app, None, "q=multi-agent").await;
    assert_eq!(ids(&found).len(), 1);
    let dont = search(&app, None, "q=don%27t%20panic").await;
    let snippet = dont["items"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("&lt;script&gt;"), "{snippet}");
    assert!(!snippet.contains("<script>"));
    assert!(snippet.contains("<mark>panic</mark>"), "{snippet}");
    // Scope tokens (owner, category) cannot be searched for.
    let owner = format!("zo{}", ana.user["id"].as_str().unwrap().replace('-', ""));
    let category = format!("zc{}", hex::encode("coding"));
    for token in [owner, category] {
        assert!(ids(&search(&app, Some(&ana), &format!("q={token}")).await).is_empty());
    }
    for q in ["", "%20", "%22%2A%22"] {
        assert_error(
            app.get(&format!("{URL}/search?q={q}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
}

/// Every page of a search, followed by cursor: (ids in order, pages).
async fn search_all(app: &TestApp, s: Option<&Session>, query: &str) -> (Vec<String>, usize) {
    let mut page = search(app, s, query).await;
    let mut seen = ids(&page);
    let mut pages = 1;
    while let Some(cursor) = page["nextCursor"].as_str().map(str::to_owned) {
        page = search(app, s, &format!("{query}&cursor={cursor}")).await;
        seen.extend(ids(&page));
        pages += 1;
        assert!(pages < 50, "the cursor never ends");
    }
    (seen, pages)
}

#[tokio::test]
async fn search_ranks_windows_of_newest_matches_and_pages_through_them_all() {
    // Windows of 3 newest matches, so that 8 conversations span three of them.
    let app = TestApp::spawn_with(|c| c.conversations.search_window = 3).await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let mut public = Vec::new();
    for i in 0..8 {
        // Every third one has the word in its title too: it ranks first in its window.
        let title = if i % 3 == 2 { "zephyr notes" } else { "notes" };
        let c = create(
            &app,
            &ana,
            conversation(&format!("{title} {i}"), "a zephyr", true),
        )
        .await;
        public.push(c["id"].as_str().unwrap().to_owned());
    }
    let private = create(&app, &ana, conversation("mine", "zephyr", false)).await;
    let private = private["id"].as_str().unwrap().to_owned();
    let hidden = create(&app, &bob, conversation("bob's", "zephyr", false)).await;
    let hidden = hidden["id"].as_str().unwrap().to_owned();

    // The newest window (7, 6, 5) first, 5 ahead for its title; then (4, 3, 2), 2 ahead;
    // then (1, 0).
    let (seen, pages) = search_all(&app, None, "q=zephyr&limit=2").await;
    let order = |i: &[usize]| i.iter().map(|&i| public[i].clone()).collect::<Vec<_>>();
    assert_eq!(seen, order(&[5, 7, 6, 2, 4, 3, 1, 0]));
    assert_eq!(pages, 4);

    // Conversations saved while a client pages do not shift its pages.
    let first = search(&app, None, "q=zephyr&limit=3").await;
    let late = create(&app, &ana, conversation("zephyr late", "zephyr", true)).await;
    let mut seen = ids(&first);
    let mut cursor = first["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let next = search(&app, None, &format!("q=zephyr&limit=3&cursor={c}")).await;
        seen.extend(ids(&next));
        cursor = next["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, order(&[5, 7, 6, 2, 4, 3, 1, 0]));
    assert!(!seen.contains(&late["id"].as_str().unwrap().to_owned()));
    // A cursor that is not one of ours (or a list's) is refused, as lists refuse it.
    for cursor in ["garbage", first["nextCursor"].as_str().unwrap()] {
        let path = if cursor == "garbage" {
            format!("{URL}/search?q=zephyr&cursor={cursor}")
        } else {
            format!("{URL}?cursor={cursor}")
        };
        assert_error(app.get(&path).await, StatusCode::BAD_REQUEST, "bad_request").await;
    }

    // Both indexes, each scope: ana's private one joins `mine` and `all`, bob's never.
    let (all, _) = search_all(&app, Some(&ana), "q=zephyr&limit=4").await;
    assert_eq!(all.len(), 10);
    assert!(all.contains(&private) && !all.contains(&hidden));
    let (mine, _) = search_all(&app, Some(&ana), "q=zephyr&scope=mine&limit=4").await;
    assert_eq!(mine.len(), 10);
    assert!(mine.contains(&private));
    let (bobs, _) = search_all(&app, Some(&bob), "q=zephyr&scope=mine").await;
    assert_eq!(bobs, vec![hidden.clone()]);
    let (theirs, _) = search_all(&app, Some(&bob), "q=zephyr&scope=all&limit=3").await;
    assert_eq!(theirs.len(), 10);
    assert!(theirs.contains(&hidden) && !theirs.contains(&private));

    // A conversation made private leaves public search; made public, it joins.
    let path = format!("{URL}/{private}");
    app.call(Method::PUT, &path)
        .bearer(&ana.access)
        .json(&json!({"visibility": "public"}))
        .expect(StatusCode::OK)
        .await;
    let (public_now, _) = search_all(&app, None, "q=zephyr&limit=5").await;
    assert!(public_now.contains(&private));
    app.call(Method::PUT, &path)
        .bearer(&ana.access)
        .json(&json!({"visibility": "private"}))
        .expect(StatusCode::OK)
        .await;
    let (public_now, _) = search_all(&app, None, "q=zephyr&limit=5").await;
    assert!(!public_now.contains(&private));
}

#[tokio::test]
async fn search_is_rate_limited() {
    let app = TestApp::spawn_with(|c| c.rate_limit.search_per_minute = 3).await;
    for _ in 0..3 {
        search(&app, None, "q=anything").await;
    }
    let limited = app.get(&format!("{URL}/search?q=anything")).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_deleted_conversations_words_leave_the_database_files() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let doomed = create(
        &app,
        &ana,
        conversation("Quetzalcoatlus notes", "xylophonist quetzalcoatlus", true),
    )
    .await;
    create(&app, &ana, conversation("Keep me", "ordinary words", true)).await;
    let path = format!("{URL}/{}", doomed["id"].as_str().unwrap());
    assert_eq!(
        app.delete_as(&ana.access, &path).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(ids(&search(&app, None, "q=quetzalcoatlus").await).is_empty());
    let mut app = app;
    app.stop().await; // checkpoints the WAL into the database file and truncates it
    for entry in std::fs::read_dir(app.dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(11).any(|w| w == b"xylophonist");
            assert!(!found, "the deleted words remain in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_exports_one_users_conversations() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    create(&app, &ana, conversation("First", "one", false)).await;
    create(&app, &ana, conversation("Second", "two", true)).await;
    create(&app, &bob, conversation("Bob's", "three", true)).await;
    let dir = app.dir.path().to_owned();
    let out = dir.join("ana.json");
    let target = out.clone();
    let output = tokio::task::spawn_blocking(move || {
        crate::helpers::persona_command(&dir)
            .env("PERSONA_STORAGE__DATA_DIR", dir.join("data"))
            .args([
                "admin",
                "conversations",
                "export",
                "--user",
                "Ana@Example.com",
                "--out",
            ])
            .arg(&target)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    let export: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(export["count"], 2);
    let titles: Vec<&str> = export["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["First", "Second"]);
    assert_eq!(export["conversations"][0]["messages"][0]["content"], "one");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An unknown user and an existing file are clear failures.
    let dir = app.dir.path().to_owned();
    let again = tokio::task::spawn_blocking(move || {
        crate::helpers::persona_command(&dir)
            .env("PERSONA_STORAGE__DATA_DIR", dir.join("data"))
            .args([
                "admin",
                "conversations",
                "export",
                "--user",
                "ghost@example.com",
                "--out",
            ])
            .arg(dir.join("ghost.json"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    assert!(crate::helpers::stderr(&again).contains("no account"));
}

#[tokio::test]
async fn featuring_an_unknown_conversation_is_404() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
        assert_error(
            app.call(Method::PATCH, &format!("{URL}/{id}/featured"))
                .bearer(&root.access)
                .json(&json!({"featured": true}))
                .send()
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}
