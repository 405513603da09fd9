//! The statuses an operation answers because of its *kind*, added to the document by code so
//! that no handler lists them by hand and none can forget one. Handlers document only what is
//! theirs (`409 email_taken`, `404` for a missing script, …).
//!
//! What an operation is, is read from the document itself: its security requirement (the
//! `bearer` scheme, required or optional, with the `admin` role as its scope), its request
//! body, its query and path parameters, and whether it is under `/api/v1`. Each rule names
//! the piece of the server that answers it; `tests/api/api_docs.rs` sends those requests to
//! every operation and fails on any status the document does not list.
//!
//! Not listed anywhere: 405 (a method the path does not have: not an operation) and 502
//! (only the AI routes talk to an upstream; they say so themselves).

use serde_json::Value;
use utoipa::openapi::{
    OpenApi, PathItem, Ref, RefOr, ResponseBuilder,
    content::Content,
    header::HeaderBuilder,
    path::{Operation, ParameterIn},
    request_body::RequestBody,
    schema::{ObjectBuilder, Type},
};

/// How an operation authenticates, from its `security` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No `bearer` requirement: a token is never read.
    None,
    /// `bearer` or nothing (`MaybeAuthUser`): no token is anonymous, a bad one is refused.
    Optional,
    /// `bearer` (`AuthUser`).
    Required,
    /// `bearer` with the `admin` scope (`AdminUser`).
    Admin,
}

/// What the document says about one operation, as far as the rules care.
#[derive(Debug, Clone, Copy)]
struct Kind {
    /// Under `/api/v1`: a feature's route (they use the database; the system routes do not).
    api: bool,
    auth: Auth,
    /// Takes `application/json` (`AppJson`, or read as JSON when that is its content type).
    json_body: bool,
    /// Takes any body.
    body: bool,
    /// Has query parameters (`AppQuery`).
    query: bool,
    /// Has a query parameter with bounds (`minimum`, `maximum`, …), which the handler checks.
    bounded_query: bool,
    /// Has path parameters (`AppPath`).
    path: bool,
}

/// One status an operation of some kind answers, and why.
struct Rule {
    status: u16,
    applies: fn(&Kind) -> bool,
    description: &'static str,
}

/// The rule set: every status that middleware, extractors or the shared plumbing answer, for
/// the operations they answer it on.
const RULES: &[Rule] = &[
    Rule {
        status: 400,
        applies: |k| k.json_body,
        description: "`bad_request`: the body is not valid JSON",
    },
    Rule {
        status: 400,
        applies: |k| k.query,
        description: "`bad_request`: the query string does not parse (a wrong type, a \
            repeated parameter, a cursor not made for this list)",
    },
    Rule {
        status: 400,
        applies: |k| k.path,
        description: "`bad_request`: a path parameter does not decode",
    },
    Rule {
        status: 401,
        applies: |k| matches!(k.auth, Auth::Required | Auth::Admin),
        description: "`unauthorized` or `token_expired`: no access token, or one that is \
            invalid, expired or of an ended session",
    },
    Rule {
        status: 401,
        applies: |k| k.auth == Auth::Optional,
        description: "`unauthorized` or `token_expired`: an access token that is invalid, \
            expired or of an ended session (without one, the request is anonymous)",
    },
    Rule {
        status: 403,
        applies: |k| k.auth != Auth::None,
        description: "`account_disabled`: the token's account is disabled",
    },
    Rule {
        status: 403,
        applies: |k| k.auth == Auth::Admin,
        description: "`forbidden`: this needs an administrator",
    },
    Rule {
        status: 404,
        applies: |k| k.path,
        description: "`not_found`: no such resource, or not one the caller may see",
    },
    Rule {
        status: 413,
        applies: |k| k.body,
        description: "`payload_too_large`: the body is over the route's limit",
    },
    Rule {
        status: 415,
        applies: |k| k.body,
        description: "`unsupported_media_type`: the body is not in a content type listed here",
    },
    Rule {
        status: 422,
        applies: |k| k.json_body,
        description: "`validation_failed`: a field is missing, of the wrong type or invalid; \
            `details` maps each field to its messages",
    },
    Rule {
        status: 422,
        applies: |k| k.bounded_query,
        description: "`validation_failed`: a query parameter is out of its range",
    },
    Rule {
        status: 429,
        applies: |_| true,
        description: "`rate_limited`: over `rate_limit.per_ip_per_minute` for the client's \
            address; with Retry-After",
    },
    Rule {
        status: 500,
        applies: |_| true,
        description: "`internal`: a bug; logged with the request id, nothing else is said",
    },
    Rule {
        status: 503,
        applies: |k| k.api,
        description: "`unavailable`: the database is busy or the server is shutting down",
    },
    Rule {
        status: 504,
        applies: |_| true,
        description: "`request_timeout`: no answer within the route's request timeout",
    },
];

/// Adds the statuses of [`RULES`] to every operation of `doc`. A status the handler already
/// lists keeps its description, with the common reasons appended.
pub fn add_common(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/v1/");
        let shared = item.parameters.clone().unwrap_or_default();
        for operation in operations(item) {
            let kind = kind(api, &shared, operation);
            let mut wanted: Vec<(u16, Vec<&str>)> = Vec::new();
            for rule in RULES.iter().filter(|rule| (rule.applies)(&kind)) {
                match wanted.iter_mut().find(|(status, _)| *status == rule.status) {
                    Some((_, descriptions)) => descriptions.push(rule.description),
                    None => wanted.push((rule.status, vec![rule.description])),
                }
            }
            for (status, descriptions) in wanted {
                add(operation, status, &descriptions.join("; "));
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn kind(
    api: bool,
    shared: &[RefOr<utoipa::openapi::path::Parameter>],
    operation: &Operation,
) -> Kind {
    let parameters: Vec<_> = shared
        .iter()
        .chain(operation.parameters.iter().flatten())
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    let query: Vec<_> = parameters
        .iter()
        .filter(|p| p.parameter_in == ParameterIn::Query)
        .collect();
    let body = match &operation.request_body {
        Some(RefOr::T(RequestBody { content, .. })) => Some(content),
        _ => None,
    };
    Kind {
        api,
        auth: auth(operation),
        json_body: body.is_some_and(|content| content.contains_key("application/json")),
        body: body.is_some(),
        query: !query.is_empty(),
        bounded_query: query.iter().any(|p| {
            let schema = serde_json::to_value(&p.schema).unwrap_or_default();
            ["minimum", "maximum", "minLength", "maxLength", "pattern"]
                .iter()
                .any(|bound| schema.get(bound).is_some())
        }),
        path: parameters
            .iter()
            .any(|p| p.parameter_in == ParameterIn::Path),
    }
}

/// Reads the security list as JSON: `SecurityRequirement` keeps its map private.
fn auth(operation: &Operation) -> Auth {
    let requirements: Vec<Value> = operation
        .security
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let bearer: Vec<&Value> = requirements
        .iter()
        .filter_map(|r| r.get("bearer"))
        .collect();
    if bearer.is_empty() {
        Auth::None
    } else if bearer.iter().any(|scopes| {
        scopes
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "admin"))
    }) {
        Auth::Admin
    } else if requirements
        .iter()
        .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
    {
        Auth::Optional
    } else {
        Auth::Required
    }
}

fn add(operation: &mut Operation, status: u16, description: &str) {
    let response = operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| ResponseBuilder::new().into());
    let RefOr::T(response) = response else {
        return;
    };
    if response.description.is_empty() {
        response.description = description.to_owned();
    } else if !response.description.contains(description) {
        response.description = format!("{}; {description}", response.description);
    }
    if response.content.is_empty() {
        response.content.insert(
            "application/json".to_owned(),
            Content::new(Some(Ref::from_schema_name("ErrorBody"))).into(),
        );
    }
    // Every 429 is an `ApiError::TooManyRequests`, which always says when to come back.
    if status == 429 {
        response
            .headers
            .entry("Retry-After".to_owned())
            .or_insert_with(|| {
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait before trying again"))
                    .build()
                    .into()
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(operation: Value) -> OpenApi {
        serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/api/v1/things/{id}": {"put": operation}},
        }))
        .unwrap()
    }

    fn statuses(doc: &OpenApi) -> Value {
        let value = serde_json::to_value(doc).unwrap();
        value["paths"]["/api/v1/things/{id}"]["put"]["responses"].clone()
    }

    #[test]
    fn a_json_body_a_token_and_a_path_bring_their_statuses() {
        let mut doc = doc(serde_json::json!({
            "security": [{"bearer": []}],
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {"description": "ok"},
                "409": {"description": "`already_exists`"},
                "422": {"description": "`checksum_mismatch`"},
            },
        }));
        add_common(&mut doc);
        let responses = statuses(&doc);
        for status in [
            "200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503",
            "504",
        ] {
            assert!(responses[status].is_object(), "{status} in {responses}");
        }
        let described = |s: &str| responses[s]["description"].as_str().unwrap().to_owned();
        assert!(described("422").starts_with("`checksum_mismatch`; `validation_failed`"));
        assert!(
            !described("403").contains("`forbidden`"),
            "not an admin route"
        );
        assert_eq!(
            responses["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert_eq!(described("409"), "`already_exists`");
        assert_eq!(
            responses["429"]["headers"]["Retry-After"]["schema"]["type"],
            "integer"
        );
    }

    #[test]
    fn optional_and_admin_tokens_and_bounded_queries() {
        let mut optional = doc(serde_json::json!({
            "security": [{}, {"bearer": []}],
            "parameters": [{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "ok"}},
        }));
        add_common(&mut optional);
        let responses = statuses(&optional);
        assert!(
            responses["401"]["description"]
                .as_str()
                .unwrap()
                .contains("anonymous")
        );
        assert!(responses["422"].is_object() && responses["400"].is_object());
        assert!(
            responses["413"].is_null() && responses["415"].is_null(),
            "no body"
        );

        let mut admin = doc(serde_json::json!({
            "security": [{"bearer": ["admin"]}],
            "responses": {"204": {"description": "done"}},
        }));
        add_common(&mut admin);
        let responses = statuses(&admin);
        assert!(
            responses["403"]["description"]
                .as_str()
                .unwrap()
                .contains("`forbidden`")
        );
        assert!(responses["401"].is_object());
        assert!(responses["422"].is_null() && responses["400"].is_null());
    }

    #[test]
    fn public_routes_outside_the_api_get_only_what_every_route_answers() {
        let mut doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/health": {"get": {"responses": {"200": {"description": "ok"}}}}},
        }))
        .unwrap();
        add_common(&mut doc);
        let value = serde_json::to_value(&doc).unwrap();
        let responses = value["paths"]["/health"]["get"]["responses"]
            .as_object()
            .unwrap();
        let mut listed: Vec<&str> = responses.keys().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["200", "429", "500", "504"]);
    }
}
