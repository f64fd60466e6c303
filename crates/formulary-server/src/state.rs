use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::serve::IncomingStream;
use ipnet::IpNet;

use formulary_core::OrgCode;
use formulary_gateway::PypiGateway;
use formulary_store::{BlobStore, Database};

use crate::snapshot::SnapshotHolder;

/// What every handler can reach: a handle on the [`ServerState`], cheap to clone.
///
/// Axum clones the state for every middleware layer and every extractor of every request;
/// a handle makes that one atomic increment, where cloning the fields themselves (the URL,
/// the strings, the pools) took a quarter of the CPU of serving a small index page. Fields
/// read through it as before; setting one (at start, before serving) copies the state when
/// the handle is shared.
#[derive(Debug, Clone)]
pub struct AppState(Arc<ServerState>);

impl std::ops::Deref for AppState {
    type Target = ServerState;

    fn deref(&self) -> &ServerState {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut ServerState {
        Arc::make_mut(&mut self.0)
    }
}

/// The state itself: stores, gateways and settings.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The record store.
    pub database: Database,
    /// The blob store (cached package files).
    pub blobs: BlobStore,
    /// The policy snapshot in force.
    pub snapshot: Arc<SnapshotHolder>,
    /// The PyPI gateway, when configured.
    pub pypi: Option<Arc<PypiGateway>>,
    /// The CRAN gateway, when configured.
    pub cran: Option<Arc<formulary_gateway::CranGateway>>,
    /// The desktop tools gateway, when configured.
    pub tools: Option<Arc<formulary_gateway::ToolGateway>>,
    /// The npm gateway, when configured.
    pub npm: Option<Arc<formulary_gateway::NpmGateway>>,
    /// The conda gateway, when configured.
    pub conda: Option<Arc<formulary_gateway::CondaGateway>>,
    /// Gateways of organisations that pull from upstreams of their own.
    pub pypi_by_organisation: std::collections::HashMap<OrgCode, Arc<PypiGateway>>,
    /// The organisation whose view the unprefixed gateway paths (`/pypi/…`) serve.
    pub default_organisation: OrgCode,
    /// The download ledger's batching writer; without one, lines are written one by one.
    pub ledger: Option<formulary_gateway::DownloadLedger>,
    /// The blob folder, when blobs live in a local folder: `/readyz` checks it can be written.
    pub blob_dir: Option<std::path::PathBuf>,
    /// A short description of where records live (`SQLite` or `PostgreSQL`), for the landing page.
    pub storage_label: String,
    /// The address people and clients use to reach this server (`public_url`): links and
    /// install commands are built from it, never from the request's `Host`; when it is
    /// `https`, cookies are `Secure` and pages carry HSTS; form posts must come from its origin.
    pub public_url: url::Url,
    /// Proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Whether the package gateway may be read without a token (`gateway_access`).
    pub gateway_access: crate::GatewayAccess,
    /// Gateway tokens recently found valid.
    pub gateway_tokens: Arc<crate::GatewayTokens>,
    /// The advisory feed's freshness as this replica last read it (kept by the sync loop).
    pub feeds: Arc<crate::surveillance::FeedWatch>,
    /// The OpenID Connect providers people may sign in with (`oidc_providers`).
    pub oidc: crate::oidc::OidcProviders,
    /// Dependency closures counted for evidence pages, and the counts still running.
    pub evidence: Arc<crate::evidence::EvidenceMemo>,
}

impl AppState {
    /// State over an opened database, with a freshly loaded snapshot.
    pub async fn new(
        database: Database,
        blobs: BlobStore,
        pypi: Option<Arc<PypiGateway>>,
        default_organisation: OrgCode,
    ) -> Result<AppState, formulary_store::StoreError> {
        let snapshot = SnapshotHolder::load(&database).await?;
        AppState::with_snapshot(database, blobs, pypi, default_organisation, snapshot)
    }

    /// State over a database with a snapshot already loaded (from the local copy when the
    /// database is down at start).
    pub fn with_snapshot(
        database: Database,
        blobs: BlobStore,
        pypi: Option<Arc<PypiGateway>>,
        default_organisation: OrgCode,
        snapshot: SnapshotHolder,
    ) -> Result<AppState, formulary_store::StoreError> {
        let snapshot = Arc::new(snapshot);
        let storage_label = if database.is_sqlite() {
            "SQLite"
        } else {
            "PostgreSQL"
        }
        .to_owned();
        Ok(AppState(Arc::new(ServerState {
            database,
            blobs,
            snapshot,
            pypi,
            cran: None,
            tools: None,
            npm: None,
            conda: None,
            pypi_by_organisation: std::collections::HashMap::new(),
            default_organisation,
            ledger: None,
            blob_dir: None,
            storage_label,
            public_url: url::Url::parse("http://127.0.0.1:8080/").map_err(|error| {
                formulary_store::StoreError::Corrupt {
                    what: "default public URL",
                    why: error.to_string(),
                }
            })?,
            trusted_proxies: TrustedProxies::default(),
            gateway_access: crate::GatewayAccess::default(),
            gateway_tokens: Arc::default(),
            feeds: Arc::default(),
            oidc: crate::oidc::OidcProviders::default(),
            evidence: Arc::default(),
        })))
    }

    /// True when `public_url` is `https`: cookies are then `Secure` and pages carry HSTS.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The origin browsers send in `Origin` for pages of `public_url`, e.g. `https://host`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

/// The TCP peer of a connection, as `formulary serve` records it for each request
/// ([`axum::extract::ConnectInfo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, crate::ZeroCopyListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, crate::ZeroCopyListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// The networks of reverse proxies whose `X-Forwarded-For` header is believed. A request whose
/// TCP peer is not among them is taken to come from that peer, whatever the header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs such as `10.0.0.0/8` or single addresses such as `127.0.0.1`.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<TrustedProxies, String> {
        texts
            .iter()
            .map(|text| {
                let text = text.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "'{}' is not a network; write a CIDR such as 10.0.0.0/8 or an address such as 127.0.0.1",
                            text.escape_debug()
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn contains(&self, address: &IpAddr) -> bool {
        let address = canonical(*address);
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// address in `X-Forwarded-For` (read from the right) that is not itself a trusted proxy.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.contains(&peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|part| part.trim().parse::<IpAddr>().map(canonical))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        let mut client = peer;
        for address in forwarded.iter().rev() {
            client = *address;
            if !self.contains(address) {
                break;
            }
        }
        Some(client)
    }
}

/// IPv4 addresses mapped into IPv6 (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The address a request came from, for throttling sign-ins and for the audit log: the TCP
/// peer, or what a trusted proxy reports ([`TrustedProxies::client_address`]); `unknown` when
/// the server was started without connection information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|ConnectInfo(Peer(address))| address.ip());
        Ok(ClientAddress(
            state
                .trusted_proxies
                .client_address(peer, &parts.headers)
                .map_or_else(|| "unknown".to_owned(), |address| address.to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.7"]).expect("parses");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9, 10.1.1.1"),
        );
        let address = |text: &str| text.parse::<IpAddr>().ok();
        assert_eq!(
            proxies.client_address(address("10.2.2.2"), &headers),
            address("203.0.113.9"),
            "the nearest untrusted hop is the client; what it claims further left is not believed"
        );
        assert_eq!(
            proxies.client_address(address("198.51.100.50"), &headers),
            address("198.51.100.50"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            proxies.client_address(address("::ffff:192.0.2.7"), &HeaderMap::new()),
            address("192.0.2.7")
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("not an address"),
        );
        assert_eq!(
            proxies.client_address(address("10.2.2.2"), &headers),
            address("10.2.2.2"),
            "a malformed header leaves the peer"
        );
        assert!(TrustedProxies::parse(&["example.org"]).is_err());
        assert_eq!(
            TrustedProxies::default().client_address(None, &headers),
            None
        );
    }
}
