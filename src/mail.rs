//! wizbrand's own outgoing mail (invitations) over SMTP, with `lettre`: one pooled
//! transport per process, TLS by rustls when the URL asks for it.
//!
//! Keycloak sends its own mails (set a password, verify an email) through the realm's
//! SMTP settings; this module is only for what wizbrand writes itself.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::MailConfig;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No `WIZBRAND_SMTP_URL`: wizbrand was set up without outgoing mail.
    #[error("outgoing mail is not set up (WIZBRAND_SMTP_URL is unset)")]
    NotConfigured,
    /// The settings cannot make a transport (checked at start-up already).
    #[error("WIZBRAND_SMTP_URL cannot be used: {0}")]
    Transport(String),
    #[error("`{0}` cannot be a mail address")]
    Address(String),
    #[error("the mail could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// The SMTP server refused the message or could not be reached.
    #[error("the SMTP server (WIZBRAND_SMTP_URL) did not take the mail: {0}")]
    Send(#[source] lettre::transport::smtp::Error),
}

/// One message: a plain-text body and the same in HTML.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends mail, or says clearly that it cannot (no SMTP set up).
pub struct Mailer {
    inner: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl Mailer {
    /// The mailer of `config`; `None` gives one that refuses every mail with
    /// [`MailError::NotConfigured`].
    pub fn new(config: Option<&MailConfig>) -> Result<Mailer, MailError> {
        let Some(config) = config else {
            return Ok(Mailer { inner: None });
        };
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose_secret())
                // lettre's message names the scheme or TLS setting, never the password.
                .map_err(|e| MailError::Transport(e.to_string()))?
                .timeout(Some(config.timeout))
                .build();
        let from = config
            .from
            .parse()
            .map_err(|_| MailError::Address(config.from.clone()))?;
        Ok(Mailer {
            inner: Some((transport, from)),
        })
    }

    pub fn configured(&self) -> bool {
        self.inner.is_some()
    }

    pub async fn send(&self, mail: &Outgoing) -> Result<(), MailError> {
        let (transport, from) = self.inner.as_ref().ok_or(MailError::NotConfigured)?;
        let message = build(from, mail)?;
        transport.send(message).await.map_err(MailError::Send)?;
        tracing::info!(subject = %mail.subject, "mail sent");
        Ok(())
    }

    /// Connects and greets the server (for `wizbrand check`).
    pub async fn probe(&self) -> Result<(), MailError> {
        let (transport, _) = self.inner.as_ref().ok_or(MailError::NotConfigured)?;
        match transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Transport(
                "the server did not answer NOOP".to_owned(),
            )),
            Err(e) => Err(MailError::Send(e)),
        }
    }
}

fn build(from: &Mailbox, mail: &Outgoing) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| MailError::Address(mail.to.clone()))?;
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_has_both_bodies_and_refuses_a_header_injection() {
        let from: Mailbox = "wizbrand <noreply@wizbrand.localhost>".parse().unwrap();
        let mail = Outgoing {
            to: "new.person@example.com".into(),
            subject: "You are invited".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
        };
        let built = String::from_utf8(build(&from, &mail).unwrap().formatted()).unwrap();
        assert!(built.contains("To: new.person@example.com"), "{built}");
        assert!(built.contains("multipart/alternative"), "{built}");
        assert!(built.contains("text/html"), "{built}");
        let injected = Outgoing {
            to: "a@example.com\r\nBcc: evil@example.com".into(),
            ..mail
        };
        assert!(matches!(
            build(&from, &injected),
            Err(MailError::Address(_))
        ));
    }

    #[tokio::test]
    async fn without_settings_nothing_is_sent_and_the_error_names_the_setting() {
        let mailer = Mailer::new(None).unwrap();
        assert!(!mailer.configured());
        let refused = mailer
            .send(&Outgoing {
                to: "a@example.com".into(),
                subject: "s".into(),
                text: "t".into(),
                html: "h".into(),
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("WIZBRAND_SMTP_URL"), "{refused}");
    }
}
