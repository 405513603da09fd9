//! SQL of sync metadata: plain functions over a connection.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{domain::Timestamp, error::AppResult};

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub device_id: String,
    pub device_name: Option<String>,
    pub platform: Option<String>,
    pub sync_version: i64,
    pub data_hash: String,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub last_sync_at: Timestamp,
}

const COLUMNS: &str = "device_id, device_name, platform, sync_version, data_hash, is_active, created_at, last_sync_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        device_id: row.get(0)?,
        device_name: row.get(1)?,
        platform: row.get(2)?,
        sync_version: row.get(3)?,
        data_hash: row.get(4)?,
        is_active: row.get(5)?,
        created_at: row.get(6)?,
        last_sync_at: row.get(7)?,
    })
}

pub fn device(conn: &Connection, user_id: &str, device_id: &str) -> AppResult<Option<DeviceRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sync_devices WHERE user_id = ?1 AND device_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([user_id, device_id], from_row)
        .optional()?)
}

/// Every device of the user, most recently synced first.
pub fn devices(conn: &Connection, user_id: &str) -> AppResult<Vec<DeviceRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sync_devices WHERE user_id = ?1
         ORDER BY last_sync_at DESC, device_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The active device with the highest version; on a tie, the one that synced last.
pub fn latest_active(conn: &Connection, user_id: &str) -> AppResult<Option<DeviceRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sync_devices WHERE user_id = ?1 AND is_active = 1
         ORDER BY sync_version DESC, last_sync_at DESC, device_id LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([user_id], from_row)
        .optional()?)
}

pub struct Report<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub device_name: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub sync_version: i64,
    pub data_hash: &'a str,
    pub now: Timestamp,
}

/// Inserts or updates the device's row (reactivating it); name and platform are kept when
/// the report leaves them out.
pub fn upsert(conn: &Connection, r: &Report<'_>) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO sync_devices (user_id, device_id, device_name, platform, sync_version,
                                   data_hash, is_active, created_at, last_sync_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)
         ON CONFLICT (user_id, device_id) DO UPDATE SET
             device_name = coalesce(excluded.device_name, device_name),
             platform = coalesce(excluded.platform, platform),
             sync_version = excluded.sync_version,
             data_hash = excluded.data_hash,
             is_active = 1,
             last_sync_at = excluded.last_sync_at",
    )?
    .execute(params![
        r.user_id,
        r.device_id,
        r.device_name,
        r.platform,
        r.sync_version,
        r.data_hash,
        r.now
    ])?;
    Ok(())
}

/// Marks a device inactive. `false` when the user has no such device.
pub fn deactivate(conn: &Connection, user_id: &str, device_id: &str) -> AppResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE sync_devices SET is_active = 0 WHERE user_id = ?1 AND device_id = ?2",
        )?
        .execute([user_id, device_id])?;
    Ok(changed > 0)
}

/// The user's active devices, as kept in `users.device_count` (no scan).
pub fn active_count(conn: &Connection, user_id: &str) -> AppResult<i64> {
    Ok(conn
        .prepare_cached("SELECT device_count FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Forgets the user's least recently synced inactive devices until fewer than `most` rows
/// are left (called only when a new device appears, so the count is bounded by the cap).
pub fn make_room(conn: &Connection, user_id: &str, most: u32) -> AppResult<()> {
    let rows: i64 = conn
        .prepare_cached("SELECT count(*) FROM sync_devices WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))?;
    let excess = rows - i64::from(most) + 1;
    if excess > 0 {
        conn.prepare_cached(
            "DELETE FROM sync_devices WHERE user_id = ?1 AND device_id IN (
                 SELECT device_id FROM sync_devices WHERE user_id = ?1 AND is_active = 0
                 ORDER BY last_sync_at, device_id LIMIT ?2)",
        )?
        .execute(params![user_id, excess])?;
    }
    Ok(())
}

/// Moves the user's `deviceCount` (active devices) by `delta` and sets `lastSyncAt` when
/// given: a counter kept in the writing transaction, never a count of the devices.
pub fn update_user_summary(
    conn: &Connection,
    user_id: &str,
    delta: i64,
    synced_at: Option<Timestamp>,
) -> AppResult<()> {
    conn.prepare_cached(
        "UPDATE users SET
             device_count = max(0, device_count + ?2),
             last_sync_at = coalesce(?3, last_sync_at)
         WHERE id = ?1",
    )?
    .execute(params![user_id, delta, synced_at])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    fn report<'a>(device_id: &'a str, version: i64, hash: &'a str, now: i64) -> Report<'a> {
        Report {
            user_id: "u1",
            device_id,
            device_name: None,
            platform: Some("android"),
            sync_version: version,
            data_hash: hash,
            now: Timestamp::from_unix(now),
        }
    }

    #[test]
    fn upsert_keeps_name_and_platform_and_reactivates() {
        let db = TempDb::new();
        db.user("u1");
        upsert(&db, &report("phone", 1, "aa", 10)).unwrap();
        assert!(deactivate(&db, "u1", "phone").unwrap());
        upsert(
            &db,
            &Report {
                platform: None,
                ..report("phone", 2, "bb", 20)
            },
        )
        .unwrap();
        let row = device(&db, "u1", "phone").unwrap().unwrap();
        assert_eq!((row.sync_version, row.data_hash.as_str()), (2, "bb"));
        assert_eq!(row.platform.as_deref(), Some("android"));
        assert!(row.is_active);
        assert_eq!(row.created_at, Timestamp::from_unix(10));
        assert_eq!(row.last_sync_at, Timestamp::from_unix(20));
        assert!(!deactivate(&db, "u1", "tablet").unwrap());
    }

    #[test]
    fn latest_active_prefers_version_then_recency_and_the_summary_counts_active() {
        let db = TempDb::new();
        db.user("u1");
        upsert(&db, &report("a", 5, "aa", 10)).unwrap();
        upsert(&db, &report("b", 5, "bb", 30)).unwrap();
        upsert(&db, &report("c", 9, "cc", 20)).unwrap();
        deactivate(&db, "u1", "c").unwrap();
        let latest = latest_active(&db, "u1").unwrap().unwrap();
        assert_eq!(latest.device_id, "b");
        assert_eq!(devices(&db, "u1").unwrap()[0].device_id, "b");
        update_user_summary(&db, "u1", 3, None).unwrap();
        update_user_summary(&db, "u1", -1, Some(Timestamp::from_unix(30))).unwrap();
        assert_eq!(active_count(&db, "u1").unwrap(), 2);
        let (count, last): (i64, i64) = db
            .query_row(
                "SELECT device_count, last_sync_at FROM users WHERE id = 'u1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((count, last), (2, 30));
        assert!(device(&db, "someone-else", "a").unwrap().is_none());
    }
}

#[cfg(test)]
mod room_tests {
    use super::*;
    use crate::db::testing::TempDb;

    #[test]
    fn make_room_forgets_the_oldest_inactive_devices_only() {
        let db = TempDb::new();
        db.user("u1");
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let report = Report {
                user_id: "u1",
                device_id: id,
                device_name: None,
                platform: None,
                sync_version: 1,
                data_hash: "aa",
                now: Timestamp::from_unix(10 + i as i64),
            };
            upsert(&db, &report).unwrap();
        }
        deactivate(&db, "u1", "b").unwrap();
        deactivate(&db, "u1", "c").unwrap();
        make_room(&db, "u1", 4).unwrap();
        let ids: Vec<String> = devices(&db, "u1")
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(ids, ["d", "c", "a"]);
        // Active devices are never forgotten.
        make_room(&db, "u1", 1).unwrap();
        let ids: Vec<String> = devices(&db, "u1")
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(ids, ["d", "a"]);
    }
}
