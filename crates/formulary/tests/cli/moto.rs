//! moto (a real S3-compatible server; the store's suite holds the shared part, included here)
//! with what the command-line suite adds: the settings that put a server's blobs in it.

#[path = "../../../formulary-store/tests/it/moto_server.rs"]
mod server;

pub use server::Moto;

impl Moto {
    /// The settings that put a server's blobs in `bucket` under `prefix`, with credentials.
    pub fn settings(&self, bucket: &str, prefix: &str) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("FORMULARY_BLOB_STORE", format!("s3://{bucket}/{prefix}")),
            ("FORMULARY_S3_ENDPOINT", self.endpoint()),
            ("FORMULARY_S3_REGION", "us-east-1".to_owned()),
            ("FORMULARY_S3_ALLOW_HTTP", "true".to_owned()),
        ];
        settings.extend(server::CREDENTIALS.map(|(name, value)| (name, value.to_owned())));
        settings
    }
}
