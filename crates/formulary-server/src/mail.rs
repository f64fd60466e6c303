//! The email outbox: sends the notifications waiting in the store through an SMTP server
//! (STARTTLS or implicit TLS via lettre), retrying with a growing wait when the server is down,
//! so that nothing is lost while it is. Credentials in the SMTP URL never reach a log.

use std::path::PathBuf;
use std::time::Duration;

use formulary_store::{Database, OutgoingEmail};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How the server sends email.
#[derive(Debug, Clone)]
pub struct MailOptions {
    /// `smtp://[user:password@]host[:port][?tls=starttls|none]` (STARTTLS required unless
    /// `tls=none`; port 587 by default) or `smtps://…` (TLS from the start; port 465).
    pub smtp_url: String,
    /// The `From:` address, e.g. `Formulary <formulary@example.nhs.uk>`.
    pub from: String,
    /// A PEM file of extra certificate authorities to trust (a private CA), if any.
    pub ca_file: Option<PathBuf>,
}

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL is not usable.
    #[error(
        "smtp_url is not usable: {0} (write it like smtp://user:password@smtp.example.nhs.uk:587)"
    )]
    Url(String),
    /// The `From:` address is not an address.
    #[error("smtp_from '{0}' is not an email address (write it like Formulary <formulary@example.nhs.uk>)")]
    From(String),
    /// The CA file cannot be read.
    #[error("smtp_ca_file {path}: {why}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// A ready SMTP client.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The server, without credentials, for logs.
    server: String,
}

impl Mailer {
    /// Builds the client from the options (nothing is sent yet).
    pub fn new(options: &MailOptions) -> Result<Mailer, MailError> {
        let url = url::Url::parse(&options.smtp_url)
            .map_err(|error| MailError::Url(error.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| MailError::Url("it names no host".to_owned()))?
            .to_owned();
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(MailError::Url(format!(
                    "the scheme '{other}' is not smtp or smtps"
                )))
            }
        };
        let no_tls = url
            .query_pairs()
            .any(|(key, value)| key == "tls" && value == "none");
        let mut parameters = TlsParameters::builder(host.clone());
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|error| MailError::Ca {
                path: path.display().to_string(),
                why: error.to_string(),
            })?;
            let certificate = Certificate::from_pem(&pem).map_err(|error| MailError::Ca {
                path: path.display().to_string(),
                why: error.to_string(),
            })?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let tls = if no_tls {
            Tls::None
        } else {
            let parameters = parameters
                .build_rustls()
                .map_err(|error| MailError::Url(error.to_string()))?;
            if implicit_tls {
                Tls::Wrapper(parameters)
            } else {
                Tls::Required(parameters)
            }
        };
        let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if !url.username().is_empty() {
            let user = percent_decode(url.username());
            let password = percent_decode(url.password().unwrap_or_default());
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = options
            .from
            .parse()
            .map_err(|_| MailError::From(options.from.clone()))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{host}:{port}"),
        })
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<(), String> {
        let to = Mailbox::new(
            Some(email.display_name.clone()),
            email
                .to
                .parse()
                .map_err(|_| format!("'{}' is not an email address", email.to))?,
        );
        let note = &email.notification;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&note.subject)
            .body(format!(
                "{}\n\n{}\n\n—\nYou are told this because of your role in Formulary. Turn email off on your account page.\n",
                note.body, note.link
            ))
            .map_err(|error| error.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}

/// Decodes `%XX` escapes in a URL's user or password (a `+` stays a `+`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Sends due emails every `interval` while this replica holds the `email-outbox` lease (one
/// sender across replicas), until the lease is stopped (at shutdown: the message being sent is
/// sent and recorded first, so none goes out twice).
pub fn follow_outbox(
    mailer: Mailer,
    database: Database,
    interval: Duration,
    lease: crate::jobs::JobLease,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(server = %mailer.server, "sending notification emails");
        loop {
            if !lease.hold().await {
                // Another replica sends the outbox (one sender, so no email goes out twice).
                if !lease.pause(interval).await {
                    return;
                }
                continue;
            }
            match database.due_emails(50).await {
                Ok(due) => {
                    for email in due {
                        // Still ours? (A slow SMTP server must not let the lease lapse and a
                        // second replica send the same message.)
                        if !lease.hold().await {
                            break;
                        }
                        let outcome = mailer.send(&email).await;
                        if let Err(error) = &outcome {
                            tracing::warn!(server = %mailer.server, notification = %email.notification.id, attempts = email.attempts + 1, %error, "could not send a notification email; it will be tried again");
                        }
                        if let Err(error) = database
                            .record_email_attempt(&email.notification.id, outcome)
                            .await
                        {
                            tracing::warn!(%error, "could not record an email attempt");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not read the email outbox"),
            }
            if !lease.pause(interval).await {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_decoded_and_settings_checked() {
        assert_eq!(percent_decode("p%40ss+word%2"), "p@ss+word%2");
        let options = |url: &str, from: &str| MailOptions {
            smtp_url: url.to_owned(),
            from: from.to_owned(),
            ca_file: None,
        };
        assert!(Mailer::new(&options(
            "smtp://mail.example.nhs.uk",
            "Formulary <f@example.nhs.uk>"
        ))
        .is_ok());
        let error = Mailer::new(&options("http://mail.example.nhs.uk", "f@example.nhs.uk"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("not smtp or smtps"), "{error}");
        let error = Mailer::new(&options("smtp://mail.example.nhs.uk", "not an address"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("smtp_from"), "{error}");
    }
}
