//! Typed configuration read from the environment (and `.env` when present).
//!
//! Every value is checked at start-up; an error names the variable so an operator
//! knows exactly what to fix. Secrets are held as `SecretString` and never printed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use url::Url;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set; {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var} is malformed: {reason}")]
    Malformed { var: &'static str, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings for the Keycloak realm and the clients wizbrand uses.
#[derive(Debug, Clone)]
pub struct KeycloakConfig {
    /// Keycloak's public base URL, as in its `--hostname`, e.g. `http://localhost:8180`;
    /// browsers are sent here and tokens' `iss` starts with it.
    pub url: Url,
    /// Where wizbrand itself calls Keycloak (same as `url` unless Keycloak is reached
    /// over an internal network).
    pub internal_url: Url,
    pub realm: String,
    pub web_client_id: String,
    pub web_client_secret: SecretString,
    pub api_audience: String,
    pub sync_client_id: String,
    pub sync_client_secret: SecretString,
}

impl KeycloakConfig {
    /// Rewrites a public Keycloak URL (as found in the discovery document) to the
    /// internal base, for wizbrand's own server-to-server calls.
    pub fn backchannel(&self, public: &str) -> String {
        let public_base = self.url.as_str().trim_end_matches('/');
        match public.strip_prefix(public_base) {
            Some(rest) => format!("{}{rest}", self.internal_url.as_str().trim_end_matches('/')),
            None => public.to_owned(),
        }
    }

    /// The issuer as Keycloak prints it in tokens (`--hostname` keeps it stable).
    pub fn issuer(&self) -> String {
        format!(
            "{}/realms/{}",
            self.url.as_str().trim_end_matches('/'),
            self.realm
        )
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where people reach wizbrand's own pages, e.g. `http://auth.wizbrand.localhost:8000`.
    pub public_url: Url,
    /// The parent domain of the app hosts: where `rd` may point. No cookie is set for
    /// it any more (each host has its own; docs/cookies.md).
    pub cookie_domain: String,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub migrate_on_start: bool,
    pub keycloak: KeycloakConfig,
    pub session_key: SecretString,
    /// Peers whose `X-Forwarded-*` headers are believed (Traefik's addresses).
    pub trusted_proxies: Vec<IpNet>,
    pub sync_cron: String,
    /// Run the scheduler (cron, change listener) inside `serve`.
    pub sync_enabled: bool,
    /// At most this many Keycloak admin calls at once.
    pub sync_concurrency: usize,
    /// A full sync reads every group at least this often; in between it may trust
    /// Keycloak's admin event log (`None`: always read).
    pub sync_full_read_every: Option<Duration>,
    /// Sign-in requests (`/login`, `/auth/callback`) per minute per client address; 0: no limit.
    pub signin_rate_per_minute: u32,
    /// SCIM requests per minute per SCIM token; 0: no limit.
    pub scim_rate_per_minute: u32,
    /// The top-level Keycloak group that holds one group per org (`orgs`).
    pub sync_group_root: String,
    pub log_format: LogFormat,
    /// Time limit for each readiness probe of a dependency.
    pub probe_timeout: Duration,
    /// How long a web session's platform-admin flag is believed before the admin pages
    /// read it from Keycloak again.
    pub admin_recheck: Duration,
    /// How long `serve` lets requests in flight and background tasks finish after
    /// SIGTERM or Ctrl-C.
    pub shutdown_grace: Duration,
    /// Running it in production: key rotation, the internal listener (issue 16).
    pub ops: OpsConfig,
    /// Invitations and wizbrand's own mail.
    pub lifecycle: LifecycleConfig,
    /// The gate's own settings (access log, pass cache, signed identity assertion).
    pub gate: GateSettings,
}

/// Settings of production operation (issue 16), read in one block of their own.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// Earlier session keys (`WIZBRAND_SESSION_KEYS_PREVIOUS`): they still open cookies,
    /// never seal new ones (`WIZBRAND_SESSION_KEY` does). Newest first.
    pub previous_session_keys: Vec<SecretString>,
    /// Where `/metrics` and the detailed `/readyz` are served (`WIZBRAND_OPS_LISTEN`):
    /// a listener Traefik does not route to. `None`: not served at all.
    pub listen: Option<SocketAddr>,
}

/// Shortest session key accepted: actix's cookie key takes 64 bytes (signing and
/// encryption halves).
pub const SESSION_KEY_MIN_LEN: usize = 64;

impl OpsConfig {
    fn read<S: Source>(r: &Reader<'_, S>, current_key: &str) -> Result<Self, ConfigError> {
        const PREVIOUS: &str = "WIZBRAND_SESSION_KEYS_PREVIOUS";
        let mut previous_session_keys = Vec::new();
        // Base64 has no comma, so a comma separates keys. Values are never echoed.
        for (n, key) in r.or(PREVIOUS, "").split(',').map(str::trim).enumerate() {
            if key.is_empty() || key == current_key {
                // The current key in the list too (mid-rotation) opens nothing new.
                continue;
            }
            if key.len() < SESSION_KEY_MIN_LEN {
                return Err(ConfigError::Malformed {
                    var: PREVIOUS,
                    reason: format!(
                        "key {} of the list is {} characters long; every key needs at least                          {SESSION_KEY_MIN_LEN} (keys are separated by commas)",
                        n + 1,
                        key.len()
                    ),
                });
            }
            previous_session_keys.push(SecretString::from(key.to_owned()));
        }
        let listen = match r.or("WIZBRAND_OPS_LISTEN", "127.0.0.1:9090").as_str() {
            "off" => None,
            _ => Some(r.parse("WIZBRAND_OPS_LISTEN", "127.0.0.1:9090")?),
        };
        Ok(OpsConfig {
            previous_session_keys,
            listen,
        })
    }
}

/// Looks a variable up; abstracted so tests can build a config from a map.
pub trait Source {
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, var: &str) -> Option<String> {
        HashMap::get(self, var).cloned()
    }
}

struct Reader<'a, S: Source>(&'a S);

impl<S: Source> Reader<'_, S> {
    fn opt(&self, var: &'static str) -> Option<String> {
        self.0
            .get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, var: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.opt(var).ok_or(ConfigError::Missing { var, hint })
    }

    fn or(&self, var: &'static str, default: &str) -> String {
        self.opt(var).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T>(&self, var: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.or(var, default)
            .parse()
            .map_err(|e: T::Err| ConfigError::Malformed {
                var,
                reason: e.to_string(),
            })
    }

    fn url(&self, var: &'static str, hint: &'static str) -> Result<Url, ConfigError> {
        let raw = self.required(var, hint)?;
        let url = Url::parse(&raw).map_err(|e| ConfigError::Malformed {
            var,
            reason: format!("{e} (expected an absolute http(s) URL)"),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::Malformed {
                var,
                reason: "expected an absolute http(s) URL with a host".into(),
            });
        }
        Ok(url)
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let r = Reader(source);

        let database_url = r.required(
            "DATABASE_URL",
            "set it to postgres://USER:PASSWORD@HOST:PORT/DATABASE",
        )?;
        validate_database_url(&database_url)?;

        let session_key = r.required(
            "WIZBRAND_SESSION_KEY",
            "set it to at least 64 random bytes, e.g. `openssl rand -base64 64`",
        )?;
        if session_key.len() < SESSION_KEY_MIN_LEN {
            return Err(ConfigError::Malformed {
                var: "WIZBRAND_SESSION_KEY",
                reason: format!(
                    "it is {} characters long; at least {SESSION_KEY_MIN_LEN} are needed to sign and encrypt cookies",
                    session_key.len()
                ),
            });
        }

        let trusted_proxies = r
            // None by default: a loopback default made every local process (a sidecar, a
            // script on the host) a proxy whose X-Forwarded-For the rate limit believed.
            .or("WIZBRAND_TRUSTED_PROXIES", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError::Malformed {
                        var: "WIZBRAND_TRUSTED_PROXIES",
                        reason: format!("`{s}` is neither an IP address nor a CIDR range"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let log_format = match r.or("WIZBRAND_LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Malformed {
                    var: "WIZBRAND_LOG_FORMAT",
                    reason: format!("`{other}` is not one of text, json"),
                });
            }
        };

        let sync_cron = r.or("WIZBRAND_SYNC_CRON", "0 */5 * * * *");
        validate_cron(&sync_cron)?;

        let public_url = r.url(
            "WIZBRAND_PUBLIC_URL",
            "set it to the URL people use to reach wizbrand, e.g. http://auth.wizbrand.localhost:8000",
        )?;
        let cookie_domain = r.required(
            "WIZBRAND_COOKIE_DOMAIN",
            "set it to the parent domain of the app hosts, e.g. wizbrand.localhost",
        )?;
        let public_host = public_url.host_str().unwrap_or_default();
        // An IP-address public URL (tests, a bare loopback set-up) gets a host-only
        // session cookie; a named host must sit under the cookie domain.
        let public_is_ip = matches!(
            public_url.host(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))
        );
        if !public_is_ip && !host_is_under(public_host, &cookie_domain) {
            return Err(ConfigError::Malformed {
                var: "WIZBRAND_COOKIE_DOMAIN",
                reason: format!(
                    "`{cookie_domain}` does not cover the host of WIZBRAND_PUBLIC_URL (`{public_host}`)"
                ),
            });
        }

        // The session cookie is `__Host-`, hence `Secure`: browsers store it over http
        // only from hosts they treat as secure contexts (loopback, `*.localhost`).
        if public_url.scheme() == "http" && !is_local_host(&public_url) {
            return Err(ConfigError::Malformed {
                var: "WIZBRAND_PUBLIC_URL",
                reason: format!(
                    "`{public_url}` is plain http on a host browsers do not treat as secure; \
                     use https (http is only for localhost, *.localhost and loopback addresses)"
                ),
            });
        }

        let keycloak_url = r.url(
            "KEYCLOAK_URL",
            "set it to Keycloak's base URL as in its --hostname, e.g. http://localhost:8180",
        )?;
        let keycloak_internal_url = match r.opt("KEYCLOAK_INTERNAL_URL") {
            Some(_) => r.url("KEYCLOAK_INTERNAL_URL", "")?,
            None => keycloak_url.clone(),
        };

        let ops = OpsConfig::read(&r, &session_key)?;
        Ok(Config {
            listen: r.parse("WIZBRAND_LISTEN", "127.0.0.1:8080")?,
            public_url,
            cookie_domain,
            database_url: database_url.into(),
            database_max_connections: r.parse("WIZBRAND_DB_MAX_CONNECTIONS", "10")?,
            migrate_on_start: r.parse("WIZBRAND_MIGRATE_ON_START", "true")?,
            keycloak: KeycloakConfig {
                url: keycloak_url,
                internal_url: keycloak_internal_url,
                realm: r.or("KEYCLOAK_REALM", "wizbrand"),
                web_client_id: r.or("WIZBRAND_OIDC_CLIENT_ID", "wizbrand-web"),
                web_client_secret: r
                    .required(
                        "WIZBRAND_OIDC_CLIENT_SECRET",
                        "set it to the secret of the wizbrand-web client in Keycloak",
                    )?
                    .into(),
                api_audience: r.or("WIZBRAND_API_AUDIENCE", "wizbrand-api"),
                sync_client_id: r.or("WIZBRAND_SYNC_CLIENT_ID", "wizbrand-sync"),
                sync_client_secret: r
                    .required(
                        "WIZBRAND_SYNC_CLIENT_SECRET",
                        "set it to the secret of the wizbrand-sync client in Keycloak",
                    )?
                    .into(),
            },
            session_key: session_key.into(),
            trusted_proxies,
            sync_cron,
            sync_enabled: r.parse("WIZBRAND_SYNC_ENABLED", "true")?,
            sync_concurrency: r.parse("WIZBRAND_SYNC_CONCURRENCY", "8")?,
            sync_full_read_every: match r.parse::<u64>("WIZBRAND_SYNC_FULL_READ_SECONDS", "3600")? {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            signin_rate_per_minute: r.parse("WIZBRAND_SIGNIN_RATE_PER_MINUTE", "30")?,
            scim_rate_per_minute: r.parse("WIZBRAND_SCIM_RATE_PER_MINUTE", "600")?,
            sync_group_root: {
                let root = r.or("WIZBRAND_SYNC_GROUP_ROOT", "orgs");
                if root.is_empty() || root.contains('/') {
                    return Err(ConfigError::Malformed {
                        var: "WIZBRAND_SYNC_GROUP_ROOT",
                        reason: "expected a plain group name such as `orgs`".into(),
                    });
                }
                root
            },
            log_format,
            probe_timeout: Duration::from_millis(r.parse("WIZBRAND_PROBE_TIMEOUT_MS", "2000")?),
            admin_recheck: Duration::from_secs(r.parse("WIZBRAND_ADMIN_RECHECK_SECONDS", "60")?),
            shutdown_grace: shutdown_grace(&r)?,
            ops,
            lifecycle: LifecycleConfig::read(&r)?,
            gate: GateSettings::read(&r)?,
        })
    }
}

/// The tenant lifecycle's settings: invitations and wizbrand's own outgoing mail.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `None` when `WIZBRAND_SMTP_URL` is unset: nothing that needs mail can be done.
    pub mail: Option<MailConfig>,
    /// How long an invitation link stays good (`WIZBRAND_INVITATION_DAYS`, default 7).
    pub invitation_ttl: chrono::Duration,
}

/// Where and as whom wizbrand sends mail.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://host:port` (plain, a local relay), `smtp://host:587?tls=required`
    /// (STARTTLS), `smtps://host:465`; `user:password@` for SMTP AUTH. A secret.
    pub smtp_url: SecretString,
    /// The `From` of every mail, e.g. `wizbrand <noreply@example.com>`.
    pub from: String,
    /// Time limit of one SMTP conversation.
    pub timeout: Duration,
}

impl LifecycleConfig {
    fn read<S: Source>(r: &Reader<'_, S>) -> Result<Self, ConfigError> {
        let days: i64 = r.parse("WIZBRAND_INVITATION_DAYS", "7")?;
        if !(1..=90).contains(&days) {
            return Err(ConfigError::Malformed {
                var: "WIZBRAND_INVITATION_DAYS",
                reason: format!("{days} is not between 1 and 90"),
            });
        }
        let mail = match r.opt("WIZBRAND_SMTP_URL") {
            None => None,
            Some(raw) => {
                validate_smtp_url(&raw)?;
                let from = r.or(
                    "WIZBRAND_MAIL_FROM",
                    "wizbrand <noreply@wizbrand.localhost>",
                );
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(ConfigError::Malformed {
                        var: "WIZBRAND_MAIL_FROM",
                        reason: format!(
                            "`{from}` is not a mailbox; write `Name <address@example.com>` or a bare address"
                        ),
                    });
                }
                Some(MailConfig {
                    smtp_url: raw.into(),
                    from,
                    timeout: Duration::from_secs(r.parse("WIZBRAND_SMTP_TIMEOUT_SECONDS", "10")?),
                })
            }
        };
        Ok(LifecycleConfig {
            mail,
            invitation_ttl: chrono::Duration::days(days),
        })
    }
}

/// The shape of `WIZBRAND_SMTP_URL`; the reason never repeats the URL (it may hold a
/// password).
fn validate_smtp_url(raw: &str) -> Result<(), ConfigError> {
    let malformed = |reason: &str| ConfigError::Malformed {
        var: "WIZBRAND_SMTP_URL",
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| {
        malformed(&format!(
            "{e}; expected smtp://HOST:PORT, smtp://HOST:587?tls=required or smtps://HOST:465"
        ))
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(malformed("it names no host"));
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => Ok(()),
        ("smtp" | "smtps", Some(other)) => Err(malformed(&format!(
            "tls={other} is not one of required, opportunistic"
        ))),
        (scheme, _) => Err(malformed(&format!(
            "scheme `{scheme}` is not smtp:// or smtps://"
        ))),
    }
}

/// `true` when `host` equals `domain` or is a sub-domain of it.
/// Loopback, `localhost` or a name under `.localhost`: browsers treat http there as a
/// secure context (and keep `Secure` cookies it sets).
pub fn is_local_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost") || host_is_under(name, "localhost")
        }
        None => false,
    }
}

pub fn host_is_under(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches('.');
    // Bytes, not `str` slices: a cut inside a multi-byte character must not panic.
    let (host, domain) = (host.as_bytes(), domain.as_bytes());
    host.eq_ignore_ascii_case(domain)
        || (host.len() > domain.len()
            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
            && host[host.len() - domain.len() - 1] == b'.')
}

fn validate_database_url(raw: &str) -> Result<(), ConfigError> {
    let malformed = |reason: String| ConfigError::Malformed {
        var: "DATABASE_URL",
        reason,
    };
    let url = Url::parse(raw).map_err(|e| {
        malformed(format!(
            "{e}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ))
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(malformed(format!(
            "scheme `{}` is not postgres:// or postgresql://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(malformed("it names no host".into()));
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err(malformed("it names no database".into()));
    }
    Ok(())
}

fn validate_cron(expr: &str) -> Result<(), ConfigError> {
    sync_schedule(expr).map(|_| ())
}

/// The sync's cron schedule (`WIZBRAND_SYNC_CRON`): six fields, seconds first, read
/// in UTC. Checked at start-up so a typo stops it instead of silently never syncing.
pub fn sync_schedule(expr: &str) -> Result<croner::Cron, ConfigError> {
    let malformed = |reason: String| ConfigError::Malformed {
        var: "WIZBRAND_SYNC_CRON",
        reason,
    };
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(malformed(format!(
            "`{expr}` has {fields} fields; expected 6 (sec min hour day month weekday)"
        )));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| malformed(format!("`{expr}`: {e}")))
}

/// `WIZBRAND_SHUTDOWN_GRACE_SECONDS`: 1 to 3600 (default 30, Kubernetes' default
/// termination grace; set it below the orchestrator's).
fn shutdown_grace<S: Source>(r: &Reader<'_, S>) -> Result<Duration, ConfigError> {
    const VAR: &str = "WIZBRAND_SHUTDOWN_GRACE_SECONDS";
    let raw = r.or(VAR, "30");
    match raw.parse::<u64>() {
        Ok(seconds @ 1..=3600) => Ok(Duration::from_secs(seconds)),
        _ => Err(ConfigError::Malformed {
            var: VAR,
            reason: format!("`{raw}` is not a whole number of seconds from 1 to 3600"),
        }),
    }
}

// ---------------------------------------------------------------------------------
// The gate's settings (issue 20): kept in a block of their own.

/// How the gate answers, beyond the decision itself.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// `WIZBRAND_GATE_ACCESS_LOG`: one info line per decision (off: none at all).
    pub access_log: bool,
    /// `WIZBRAND_GATE_PASS_CACHE`: app-host passes each worker keeps opened (0: none).
    pub pass_cache: usize,
    /// `X-Wizbrand-Assertion`: on when `WIZBRAND_ASSERTION_KEY_FILE` is set.
    pub assertion: Option<AssertionSettings>,
}

/// The signed identity assertion's keys and lifetime.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    /// Signs every assertion (`WIZBRAND_ASSERTION_KEY_FILE`).
    pub current: AssertionKey,
    /// Published beside it until assertions it signed have expired
    /// (`WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE`): rotation without a failed request.
    pub previous: Option<AssertionKey>,
    /// `exp` - `iat` (`WIZBRAND_ASSERTION_TTL_SECONDS`).
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl AssertionAlg {
    pub fn jws_name(self) -> &'static str {
        match self {
            AssertionAlg::Es256 => "ES256",
            AssertionAlg::EdDsa => "EdDSA",
        }
    }
}

/// A private key from a PKCS#8 PEM file, checked to be usable for its algorithm.
#[derive(Clone)]
pub struct AssertionKey {
    pub alg: AssertionAlg,
    /// The PKCS#8 document (DER). Secret: never printed.
    pub pkcs8: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("pkcs8", &"[redacted]")
            .finish()
    }
}

impl GateSettings {
    fn read<S: Source>(r: &Reader<'_, S>) -> Result<Self, ConfigError> {
        let key = |var: &'static str| r.opt(var).map(|path| read_assertion_key(var, &path));
        let assertion = match (
            key("WIZBRAND_ASSERTION_KEY_FILE"),
            key("WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE"),
        ) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::Malformed {
                    var: "WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE",
                    reason:
                        "it is only published beside WIZBRAND_ASSERTION_KEY_FILE, which is not set"
                            .into(),
                });
            }
            (Some(current), previous) => {
                let current = current?;
                let previous = previous.transpose()?;
                if previous.as_ref().is_some_and(|p| p.pkcs8 == current.pkcs8) {
                    return Err(ConfigError::Malformed {
                        var: "WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE",
                        reason: "it is the same key as WIZBRAND_ASSERTION_KEY_FILE".into(),
                    });
                }
                let ttl: u64 = r.parse("WIZBRAND_ASSERTION_TTL_SECONDS", "120")?;
                if !(30..=300).contains(&ttl) {
                    return Err(ConfigError::Malformed {
                        var: "WIZBRAND_ASSERTION_TTL_SECONDS",
                        reason: format!(
                            "{ttl} is outside 30..=300 (seconds; 60 to 120 suit most apps)"
                        ),
                    });
                }
                Some(AssertionSettings {
                    current,
                    previous,
                    ttl: Duration::from_secs(ttl),
                })
            }
        };
        Ok(GateSettings {
            access_log: r.parse("WIZBRAND_GATE_ACCESS_LOG", "false")?,
            pass_cache: r.parse("WIZBRAND_GATE_PASS_CACHE", "10000")?,
            assertion,
        })
    }
}

/// Reads and checks a PKCS#8 PEM private key (P-256 or Ed25519) named by `var`.
fn read_assertion_key(var: &'static str, path: &str) -> Result<AssertionKey, ConfigError> {
    let malformed = |reason: String| ConfigError::Malformed { var, reason };
    let text = std::fs::read_to_string(path)
        .map_err(|e| malformed(format!("cannot read `{path}`: {e}")))?;
    parse_assertion_key(&text).map_err(|why| malformed(format!("`{path}`: {why}")))
}

/// A PKCS#8 PEM document as a signing key, or why not.
pub fn parse_assertion_key(pem: &str) -> Result<AssertionKey, String> {
    use base64::Engine;
    const MAKE: &str = "make one with `openssl genpkey -algorithm ed25519` or \
                        `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`";
    let pem = pem.trim();
    if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        return Err("a SEC1 EC key; convert it to PKCS#8 with \
                    `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
            .into());
    }
    let body = pem
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or_else(|| {
            format!(
                "not an unencrypted PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----); {MAKE}"
            )
        })?;
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    let rng = ring::rand::SystemRandom::new();
    let alg = if ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .is_ok()
    {
        AssertionAlg::Es256
    } else if ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).is_ok() {
        AssertionAlg::EdDsa
    } else {
        return Err(format!(
            "not a P-256 (ES256) or Ed25519 (EdDSA) private key; {MAKE}"
        ));
    };
    Ok(AssertionKey {
        alg,
        pkcs8: der.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/wizbrand"),
            ("WIZBRAND_PUBLIC_URL", "http://auth.wizbrand.localhost:8000"),
            ("WIZBRAND_COOKIE_DOMAIN", "wizbrand.localhost"),
            ("KEYCLOAK_URL", "http://localhost:8180"),
            ("WIZBRAND_OIDC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SYNC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SESSION_KEY", &"k".repeat(64)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn error_for(var: &str, value: Option<&str>) -> String {
        let mut env = base();
        match value {
            Some(v) => env.insert(var.to_owned(), v.to_owned()),
            None => env.remove(var),
        };
        match Config::from_source(&env) {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_complete_environment_is_accepted() {
        let config = Config::from_source(&base());
        assert!(config.is_ok(), "{config:?}");
        let config = config.unwrap();
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(
            config.keycloak.issuer(),
            "http://localhost:8180/realms/wizbrand"
        );
        assert!(
            config.trusted_proxies.is_empty(),
            "no proxy is trusted unless named"
        );
        assert_eq!(
            config
                .keycloak
                .backchannel("http://localhost:8180/realms/wizbrand/protocol/openid-connect/token"),
            "http://localhost:8180/realms/wizbrand/protocol/openid-connect/token"
        );
    }

    #[test]
    fn every_error_names_its_variable() {
        let cases: &[(&str, Option<&str>)] = &[
            ("DATABASE_URL", None),
            ("DATABASE_URL", Some("not a url")),
            ("DATABASE_URL", Some("mysql://h/db")),
            ("DATABASE_URL", Some("postgres://u@h:5432/")),
            ("WIZBRAND_PUBLIC_URL", Some("auth.example.com")),
            ("WIZBRAND_COOKIE_DOMAIN", Some("other.example")),
            ("KEYCLOAK_URL", Some("ftp://kc")),
            ("KEYCLOAK_INTERNAL_URL", Some("kc:8080")),
            ("WIZBRAND_SESSION_KEY", Some("short")),
            ("WIZBRAND_TRUSTED_PROXIES", Some("10.0.0.0/33")),
            ("WIZBRAND_LOG_FORMAT", Some("xml")),
            ("WIZBRAND_SYNC_CRON", Some("*/5 * * * *")),
            ("WIZBRAND_SYNC_CRON", Some("0 */5 * * * nonday")),
            ("WIZBRAND_SHUTDOWN_GRACE_SECONDS", Some("0")),
            ("WIZBRAND_SHUTDOWN_GRACE_SECONDS", Some("3601")),
            ("WIZBRAND_SHUTDOWN_GRACE_SECONDS", Some("1.5")),
            ("WIZBRAND_SHUTDOWN_GRACE_SECONDS", Some("-1")),
            ("WIZBRAND_SYNC_GROUP_ROOT", Some("a/b")),
            ("WIZBRAND_SYNC_CONCURRENCY", Some("-1")),
            ("WIZBRAND_LISTEN", Some("localhost")),
            ("WIZBRAND_MIGRATE_ON_START", Some("maybe")),
            ("WIZBRAND_OIDC_CLIENT_SECRET", None),
            ("WIZBRAND_SESSION_KEYS_PREVIOUS", Some("too-short")),
            ("WIZBRAND_OPS_LISTEN", Some("9090")),
            ("WIZBRAND_SMTP_URL", Some("http://mail.example.com")),
            (
                "WIZBRAND_SMTP_URL",
                Some("smtp://mail.example.com?tls=maybe"),
            ),
            ("WIZBRAND_SMTP_URL", Some("not a url")),
            ("WIZBRAND_INVITATION_DAYS", Some("0")),
            ("WIZBRAND_INVITATION_DAYS", Some("week")),
        ];
        for (var, value) in cases {
            let message = error_for(var, *value);
            assert!(
                message.contains(var),
                "{var}={value:?} gave `{message}`, which does not name the variable"
            );
        }
    }

    #[test]
    fn mail_is_off_without_an_smtp_url_and_checked_with_one() {
        let config = Config::from_source(&base()).unwrap();
        assert!(config.lifecycle.mail.is_none());
        assert_eq!(config.lifecycle.invitation_ttl, chrono::Duration::days(7));
        let mut env = base();
        env.insert(
            "WIZBRAND_SMTP_URL".into(),
            "smtps://user:s3cret@mail.example.com:465".into(),
        );
        let config = Config::from_source(&env).unwrap();
        assert!(config.lifecycle.mail.is_some());
        env.insert("WIZBRAND_MAIL_FROM".into(), "not <a mailbox".into());
        let refused = error_for_env(&env);
        assert!(refused.contains("WIZBRAND_MAIL_FROM"), "{refused}");
        env.remove("WIZBRAND_MAIL_FROM");
        env.insert(
            "WIZBRAND_SMTP_URL".into(),
            "ftp://user:s3cret@mail.example.com".into(),
        );
        let refused = error_for_env(&env);
        assert!(refused.contains("WIZBRAND_SMTP_URL"), "{refused}");
        assert!(
            !refused.contains("s3cret"),
            "the password is never repeated: {refused}"
        );
    }

    fn error_for_env(env: &HashMap<String, String>) -> String {
        match Config::from_source(env) {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cookie_domain_matching_respects_label_boundaries() {
        assert!(host_is_under(
            "auth.wizbrand.localhost",
            "wizbrand.localhost"
        ));
        assert!(host_is_under("wizbrand.localhost", ".wizbrand.localhost"));
        // Not a panic on a cut inside a multi-byte character.
        assert!(!host_is_under("éizbrand.localhost", "wizbrand.localhost"));
        assert!(host_is_under("é.wizbrand.localhost", "wizbrand.localhost"));
        assert!(!host_is_under(
            "evilwizbrand.localhost",
            "wizbrand.localhost"
        ));
        assert!(!host_is_under("localhost", "wizbrand.localhost"));
    }

    #[test]
    fn plain_http_is_only_for_hosts_browsers_treat_as_secure() {
        for ok in [
            "http://127.0.0.1:4000",
            "http://[::1]:4000",
            "http://auth.wizbrand.localhost:8000",
            "https://auth.wizbrand.localhost",
        ] {
            let mut env = base();
            env.insert("WIZBRAND_PUBLIC_URL".into(), ok.into());
            assert!(Config::from_source(&env).is_ok(), "{ok}");
        }
        let mut env = base();
        env.insert("WIZBRAND_COOKIE_DOMAIN".into(), "example.com".into());
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            "http://auth.example.com".into(),
        );
        let refused = Config::from_source(&env)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("WIZBRAND_PUBLIC_URL"), "{refused}");
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            "https://auth.example.com".into(),
        );
        assert!(Config::from_source(&env).is_ok());
    }

    /// A key file of the test's own, removed afterwards.
    struct KeyFile(std::path::PathBuf);

    impl KeyFile {
        fn new(text: &str) -> KeyFile {
            let path =
                std::env::temp_dir().join(format!("wizbrand-key-{}.pem", uuid::Uuid::new_v4()));
            std::fs::write(&path, text).unwrap();
            KeyFile(path)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for KeyFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `openssl genpkey -algorithm ed25519` (a test key).
    const ED25519: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIMBZlfZzg0kb+DUalzlNwG/C131VRYDHMoeSAV5DI4SZ\n-----END PRIVATE KEY-----\n";
    /// `openssl ecparam -name prime256v1 -genkey -noout` (SEC1, not PKCS#8).
    const SEC1: &str =
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";

    #[test]
    fn the_assertion_is_off_by_default_and_its_settings_name_themselves() {
        let config = Config::from_source(&base()).unwrap();
        assert!(config.gate.assertion.is_none());
        assert!(!config.gate.access_log);
        let good = KeyFile::new(ED25519);
        let mut env = base();
        env.insert("WIZBRAND_ASSERTION_KEY_FILE".into(), good.path());
        let on = Config::from_source(&env).unwrap();
        let assertion = on.gate.assertion.unwrap();
        assert_eq!(assertion.current.alg, AssertionAlg::EdDsa);
        assert_eq!(assertion.ttl, Duration::from_secs(120));
        assert!(
            !format!("{assertion:?}").contains("MC4C"),
            "the key is never printed"
        );

        let sec1 = KeyFile::new(SEC1);
        let junk = KeyFile::new("not a key");
        let cases: Vec<(&str, &str, &str)> = vec![
            (
                "WIZBRAND_ASSERTION_KEY_FILE",
                "/nonexistent/key.pem",
                "cannot read",
            ),
            (
                "WIZBRAND_ASSERTION_KEY_FILE",
                sec1.0.to_str().unwrap_or_default(),
                "openssl pkcs8",
            ),
            (
                "WIZBRAND_ASSERTION_KEY_FILE",
                junk.0.to_str().unwrap_or_default(),
                "PKCS#8",
            ),
            (
                "WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE",
                good.0.to_str().unwrap_or_default(),
                "same key",
            ),
            ("WIZBRAND_ASSERTION_TTL_SECONDS", "3600", "30..=300"),
            (
                "WIZBRAND_GATE_ACCESS_LOG",
                "sometimes",
                "WIZBRAND_GATE_ACCESS_LOG",
            ),
            ("WIZBRAND_GATE_PASS_CACHE", "-1", "WIZBRAND_GATE_PASS_CACHE"),
        ];
        for (var, value, says) in cases {
            let mut env = base();
            if var != "WIZBRAND_ASSERTION_KEY_FILE" {
                env.insert("WIZBRAND_ASSERTION_KEY_FILE".into(), good.path());
            }
            env.insert(var.into(), value.into());
            let message = Config::from_source(&env)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(message.contains(var), "{var}={value}: `{message}`");
            assert!(message.contains(says), "{var}={value}: `{message}`");
        }
        // A previous key alone: nothing would sign.
        let mut env = base();
        env.insert("WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE".into(), good.path());
        let message = Config::from_source(&env)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("WIZBRAND_ASSERTION_PREVIOUS_KEY_FILE"),
            "{message}"
        );
    }

    #[test]
    fn an_ip_public_url_needs_no_covering_cookie_domain() {
        let mut env = base();
        env.insert("WIZBRAND_PUBLIC_URL".into(), "http://127.0.0.1:4000".into());
        assert!(Config::from_source(&env).is_ok());
    }

    #[test]
    fn previous_session_keys_are_a_comma_list_never_echoed() {
        let old = "o".repeat(64);
        let older = "p".repeat(80);
        let mut env = base();
        env.insert(
            "WIZBRAND_SESSION_KEYS_PREVIOUS".into(),
            format!(" {old} ,, {older},{}", "k".repeat(64)),
        );
        let config = Config::from_source(&env).unwrap();
        let keys: Vec<&str> = config
            .ops
            .previous_session_keys
            .iter()
            .map(secrecy::ExposeSecret::expose_secret)
            .collect();
        // Blanks and the current key itself are left out; the order is kept.
        assert_eq!(keys, [old.as_str(), older.as_str()]);

        env.insert(
            "WIZBRAND_SESSION_KEYS_PREVIOUS".into(),
            format!("{old},short-secret-value"),
        );
        let message = Config::from_source(&env)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("WIZBRAND_SESSION_KEYS_PREVIOUS"),
            "{message}"
        );
        assert!(message.contains("key 2"), "{message}");
        assert!(!message.contains("short-secret-value"), "{message}");
        assert!(!message.contains(&old), "{message}");
    }

    #[test]
    fn the_ops_listener_defaults_to_loopback_and_can_be_turned_off() {
        let config = Config::from_source(&base()).unwrap();
        assert_eq!(config.ops.listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert!(config.ops.previous_session_keys.is_empty());
        let mut env = base();
        env.insert("WIZBRAND_OPS_LISTEN".into(), "off".into());
        assert_eq!(Config::from_source(&env).unwrap().ops.listen, None);
    }
}
