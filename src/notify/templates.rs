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

/// Tells an emergency contact that the user asked for help (an SOS) or that the app saw
/// signs of a crisis. Says nothing the user wrote unless `message` is given (the admin's
/// `crisis.webhook_include_message`).
pub fn crisis_alert(to: &str, user: &str, sos: bool, message: Option<&str>) -> Mail {
    let what = if sos {
        format!("{user} pressed the SOS button in Persona and asked for you to be told.")
    } else {
        format!("Persona noticed that {user} may be going through a very hard time.")
    };
    let message = message
        .map(|m| format!("\nTheir message:\n\n{m}\n"))
        .unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: format!("{user} may need you now"),
        body: format!(
            "{what}\n{message}\n\
             You are one of their emergency contacts. Please reach out to them now: a call, a \
             message, or a visit.\n\n\
             If you think they are in immediate danger, call your local emergency number \
             (112 in Indonesia and Europe, 911 in the US, 999 in the UK). In Indonesia the \
             mental-health line is 119 extension 8; in the US, 988; in the UK, Samaritans on \
             116 123.\n"
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
