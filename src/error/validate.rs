//! Request validation that returns either every parsed value or every field error, so no
//! handler unpacks an `Option` it hopes was checked.

use super::{ApiError, AppResult, FieldErrors};

/// Collects field errors while checking a request whose fields depend on each other, then
/// fails once with all of them. For independent fields, [`validate`] is simpler.
#[derive(Debug, Default)]
pub struct Invalid(FieldErrors);

impl Invalid {
    /// Records `message` against `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The value of `result`, or `None` with its message recorded against `field`.
    pub fn take<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }

    /// `Err(422 validation_failed)` when any field was invalid.
    pub fn finish(self) -> AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// One field of a request as parsed: its name (as the client wrote it) and the value or a
/// message saying what is wrong.
pub type Field<'a, T> = (&'a str, Result<T, String>);

/// Turns parsed fields into their values, or a 422 `validation_failed` listing every invalid
/// field at once:
///
/// ```text
/// let (email, password) = validate((
///     ("email", Email::parse(&req.email)),
///     ("password", Password::parse(req.password)),
/// ))?;
/// ```
pub fn validate<F: Fields>(fields: F) -> AppResult<F::Values> {
    fields.values()
}

/// One field alone: its value, or 422 naming it.
pub fn field<T>(name: &str, result: Result<T, String>) -> AppResult<T> {
    result.map_err(|message| ApiError::invalid_field(name, message))
}

/// A tuple of [`Field`]s (see [`validate`]).
pub trait Fields {
    type Values;
    fn values(self) -> AppResult<Self::Values>;
}

macro_rules! fields_tuple {
    ($($value:ident),+) => {
        impl<'a, $($value),+> Fields for ($(Field<'a, $value>,)+) {
            type Values = ($($value,)+);

            #[allow(non_snake_case)]
            fn values(self) -> AppResult<Self::Values> {
                let mut invalid = Invalid::default();
                let ($($value,)+) = self;
                $(let $value = invalid.take($value.0, $value.1);)+
                match ($($value,)+) {
                    ($(Some($value),)+) => Ok(($($value,)+)),
                    _ => Err(ApiError::Validation(invalid.0)),
                }
            }
        }
    };
}

fields_tuple!(A, B);
fields_tuple!(A, B, C);
fields_tuple!(A, B, C, D);
fields_tuple!(A, B, C, D, E);
fields_tuple!(A, B, C, D, E, F);
fields_tuple!(A, B, C, D, E, F, G);
fields_tuple!(A, B, C, D, E, F, G, H);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_returns_every_value_or_every_invalid_field() {
        let ok: AppResult<(u8, &str)> = validate((("a", Ok(1)), ("b", Ok("x"))));
        assert_eq!(ok.unwrap(), (1, "x"));
        let bad: AppResult<(u8, &str, u8)> = validate((
            ("a", Err("is wrong".to_owned())),
            ("b", Ok("x")),
            ("c", Err("is also wrong".to_owned())),
        ));
        match bad {
            Err(ApiError::Validation(fields)) => {
                assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "c"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn invalid_collects_messages_per_field() {
        let mut invalid = Invalid::default();
        assert_eq!(invalid.take("n", Ok::<_, String>(3)), Some(3));
        invalid.add("name", "is empty");
        invalid.add("name", "is short");
        match invalid.finish() {
            Err(ApiError::Validation(fields)) => assert_eq!(fields["name"].len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Invalid::default().finish().is_ok());
    }
}
