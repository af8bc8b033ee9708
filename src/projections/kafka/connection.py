"""How every Kafka client of the ledger (the relay's producer, the topic admin, the read-model
consumers) reaches the cluster: LEDGER_KAFKA_BOOTSTRAP, and TLS and SASL as LEDGER_KAFKA_SECURITY_*
say (docs/kafka.md, "Security"). A setting that cannot work (SASL without a mechanism or a
password, a CA file that does not exist, TLS files with a plaintext protocol) stops the process at
start, naming the variable, before the store is touched."""

from __future__ import annotations

from typing import Any

from ledger.config import Settings

TLS = ("SSL", "SASL_SSL")
SASL = ("SASL_PLAINTEXT", "SASL_SSL")


def require_bootstrap(settings: Settings) -> str:
    """The cluster's bootstrap servers; ValueError naming the variable when they, or the security
    settings, cannot work."""
    if not settings.kafka_bootstrap:
        raise ValueError("LEDGER_KAFKA_BOOTSTRAP is not set (host:port of the Kafka cluster)")
    _check_security(settings)
    return settings.kafka_bootstrap


def _check_security(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol
    files = {"LEDGER_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile, "LEDGER_KAFKA_SSL_CERTFILE":
             settings.kafka_ssl_certfile, "LEDGER_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile}
    for name, path in files.items():
        if path is None:
            continue
        if protocol not in TLS:
            raise ValueError(f"{name} is set but LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS "
                             f"(use SSL or SASL_SSL)")
        if not path.is_file():
            raise ValueError(f"{name}: no such file {path}")
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        raise ValueError("LEDGER_KAFKA_SSL_CERTFILE and LEDGER_KAFKA_SSL_KEYFILE go together (a client certificate)")
    password = settings.kafka_sasl_password.get_secret_value()
    if protocol in SASL:
        if not settings.kafka_sasl_mechanism:
            raise ValueError(f"LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} needs LEDGER_KAFKA_SASL_MECHANISM")
        if not settings.kafka_sasl_username or not password:
            raise ValueError(f"LEDGER_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism} needs "
                             "LEDGER_KAFKA_SASL_USERNAME and LEDGER_KAFKA_SASL_PASSWORD")
    elif settings.kafka_sasl_mechanism or settings.kafka_sasl_username or password:
        raise ValueError(f"LEDGER_KAFKA_SASL_* is set but LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL "
                         "(use SASL_SSL, or SASL_PLAINTEXT on a trusted network)")


def connection(settings: Settings) -> dict[str, Any]:
    """kafka-python's keyword arguments for reaching the cluster, shared by every client."""
    config: dict[str, Any] = {"bootstrap_servers": require_bootstrap(settings),
                              "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in TLS:
        config["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        for option, path in (("ssl_cafile", settings.kafka_ssl_cafile), ("ssl_certfile", settings.kafka_ssl_certfile),
                             ("ssl_keyfile", settings.kafka_ssl_keyfile)):
            if path is not None:
                config[option] = str(path)
    if settings.kafka_security_protocol in SASL:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return config
