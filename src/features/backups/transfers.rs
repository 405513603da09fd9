//! At most `backups.max_transfers` uploads and downloads of one user at a time (429 beyond):
//! an upload holds up to a backup's size in memory, a download a chunk (and a format-1
//! download the whole backup), so one user's parallel transfers cannot take the server's. A
//! download's place is held by its body until sent or dropped. The map holds only users with
//! a transfer in flight.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::error::{ApiError, AppResult};

pub struct Transfers {
    most: u32,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// One transfer in flight; over when dropped.
pub struct Transfer {
    user_id: String,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

impl Transfers {
    pub fn new(most: u32) -> Transfers {
        Transfers {
            most: most.max(1),
            in_flight: Arc::default(),
        }
    }

    /// A place for one more transfer of `user_id`, or 429 `rate_limited`.
    pub fn begin(&self, user_id: &str) -> AppResult<Transfer> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_flight.entry(user_id.to_owned()).or_insert(0);
        if *count >= self.most {
            return Err(ApiError::rate_limited(
                "Another backup transfer of yours is in progress; try again when it ends.",
                Duration::from_secs(1),
            ));
        }
        *count += 1;
        Ok(Transfer {
            user_id: user_id.to_owned(),
            in_flight: self.in_flight.clone(),
        })
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_flight.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_counted_per_user_and_forgotten_when_done() {
        let transfers = Transfers::new(1);
        let first = transfers.begin("ana").unwrap();
        assert!(transfers.begin("ana").is_err());
        let other = transfers.begin("bob").unwrap();
        drop(first);
        drop(other);
        assert!(transfers.in_flight.lock().unwrap().is_empty());
        assert!(transfers.begin("ana").is_ok());
    }
}
