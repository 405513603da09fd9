//! The words of every mail the server sends, in one place.

use super::Mail;

/// A password reset code, valid for 30 minutes and usable once.
pub fn password_reset(to: &str, token: &str, link: Option<&str>) -> Mail {
    let link = link
        .map(|l| format!("\nOr open: {l}\n"))
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: "Reset your Persona password".to_owned(),
        body: format!(
            "Someone asked to reset the password of your Persona account.\n\n\
             Your reset code (valid for 30 minutes, usable once):\n\n{token}\n{link}\n\
             If this was not you, ignore this mail; your password stays as it is.\n"
        ),
    }
}

/// An email verification code, valid for 30 minutes.
pub fn email_verification(to: &str, token: &str, link: Option<&str>) -> Mail {
    let link = link
        .map(|l| format!("\nOr open: {l}\n"))
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: "Confirm your email for Persona".to_owned(),
        body: format!(
            "Welcome to Persona.\n\nYour email verification code (valid for 30 minutes):\n\n{token}\n{link}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_the_code_and_the_link() {
        let mail = password_reset("a@b.co", "T0KEN", Some("https://x/reset?token=T0KEN"));
        assert!(mail.body.contains("T0KEN") && mail.body.contains("https://x/reset"));
        assert!(
            !format!("{mail:?}").contains("T0KEN"),
            "Debug hides the body"
        );
        let verify = email_verification("a@b.co", "V", None);
        assert!(verify.body.contains("\n\nV\n") && !verify.body.contains("Or open"));
    }
}
