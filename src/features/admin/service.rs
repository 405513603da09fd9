//! The console's reports, assembled from the features' own functions (the ones the CLI
//! calls): nothing here writes SQL of another feature's tables.

use super::types::*;
use crate::{
    app::App,
    auth::users,
    domain::Timestamp,
    error::AppResult,
    features::{ai, crisis, scripts},
    http::requests_last_minute,
};

/// Version, uptime, the database and the AI upstream, accounts, load and today's AI use.
pub async fn overview(app: &App) -> AppResult<Overview> {
    let database = match app.db.ready().await {
        Ok(()) => "ok",
        Err(_) => "unavailable",
    };
    let today = Timestamp::now().start_of_day();
    let (users, usage) = app
        .db
        .read(move |conn| {
            Ok((
                users::user_counts(conn)?,
                ai::usage_by_day(conn, today.unix())?,
            ))
        })
        .await?;
    let crisis_events_today = crisis::event_counts(app, today)
        .await?
        .iter()
        .map(|(_, _, n)| n)
        .sum();
    let ai_today = usage
        .iter()
        .fold(UsageTotals::default(), |totals, row| UsageTotals {
            requests: totals.requests + row.requests,
            total_tokens: totals.total_tokens + row.total_tokens,
        });
    Ok(Overview {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: app.started_at.elapsed().as_secs(),
        database,
        ai: ai::upstream_health(app).await,
        users: UserCounts {
            total: users.0,
            admins: users.1,
            disabled: users.2,
        },
        requests_last_minute: requests_last_minute(),
        ai_today,
        crisis_events_today,
    })
}

/// A page of accounts whose email or name contains `query`, by email.
pub async fn accounts(
    app: &App,
    query: String,
    after: Option<String>,
    limit: u32,
) -> AppResult<(Vec<Account>, Option<String>)> {
    let mut rows = app
        .db
        .read(move |conn| users::search_users(conn, query.trim(), after.as_deref(), limit + 1))
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|u| u.email.clone())
    } else {
        None
    };
    Ok((rows.into_iter().map(Account::from).collect(), next))
}

/// AI calls and tokens since `since`, per day and model and per user and model.
pub async fn usage(app: &App, since: Timestamp) -> AppResult<UsageReport> {
    let (by_day, by_user) = app
        .db
        .read(move |conn| {
            Ok((
                ai::usage_by_day(conn, since.unix())?,
                ai::usage_by_user(conn, since.unix())?,
            ))
        })
        .await?;
    Ok(UsageReport {
        since,
        by_day,
        by_user,
    })
}

/// Every script with all its versions, the active one marked (what `admin scripts list`
/// prints).
pub async fn script_catalog(app: &App) -> AppResult<ScriptCatalog> {
    let mut items: Vec<ScriptVersions> = Vec::new();
    for row in scripts::all(app).await? {
        let version = ScriptVersion {
            version: row.version.to_string(),
            description: row.description,
            active: row.is_active,
            created_at: row.created_at,
        };
        match items.last_mut() {
            Some(script) if script.name == row.name => {
                if version.active {
                    script.active = Some(version.version.clone());
                }
                script.versions.push(version);
            }
            _ => items.push(ScriptVersions {
                name: row.name,
                active: version.active.then(|| version.version.clone()),
                versions: vec![version],
            }),
        }
    }
    Ok(ScriptCatalog { items })
}

/// Crisis events per day, level and source since `since`, and the latest failed
/// deliveries: counts and delivery states, never text.
pub async fn crisis_report(app: &App, since: Timestamp) -> AppResult<CrisisReport> {
    let by_day = crisis::event_counts_by_day(app, since)
        .await?
        .into_iter()
        .map(|(day, level, source, events)| CrisisDay {
            day,
            level,
            source,
            events,
        })
        .collect();
    let failed_deliveries = crisis::failed_deliveries(app, 50).await?;
    Ok(CrisisReport {
        since,
        by_day,
        failed_deliveries,
    })
}
