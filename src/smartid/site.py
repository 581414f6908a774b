"""The site file: one TOML document describing a deployment (docs/site-file.md).

Loading has two phases, so that a lab target can create its state before anything is looked up:
`parse_site()` validates the structure (every key, type and URL) and `resolve_site()` resolves the
secret references and checks that every named file exists. Each reports every problem it finds at
once: a `SiteError` with one line per problem, naming the file, the key and the problem in the
administrator's words (`smartid.siteproblems` translates pydantic's errors); neither ever puts a
secret value in a message.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smartid.errors import SecretError, SiteError
from smartid.inputs import InputRefused, load_json, load_toml, read_text
from smartid.masking import MASKER, MIN_SECRET_LENGTH, Secret
from smartid.siteproblems import describe, dotted_key

__all__ = [
    "Binding",
    "BindingEntry",
    "CertificateManagerSection",
    "Endpoint",
    "IdmSection",
    "LabSection",
    "MessagingSection",
    "PackageSection",
    "ProcessesSection",
    "SecretRef",
    "Site",
    "TlsPolicy",
    "Waiver",
    "load_site",
    "parse_site",
    "resolve_site",
]

LAB_STATE_PLACEHOLDER = "{lab_state}"
LAB_HERMOD_PLACEHOLDER = "{lab_hermod}"
LAB_CM_PLACEHOLDER = "{lab_cm}"


def _shown(value: str) -> str:
    """A URL as a message may show it: without a user or password it might carry."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "an unreadable URL"
    if "@" not in parts.netloc:
        return value
    return parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]).geturl()


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError(
            f"must not carry a user or password (got '{_shown(value)}'); credentials are "
            "secrets of their own keys"
        )
    if parts.scheme != "https":
        raise ValueError(f"must be an https:// URL (got '{_shown(value)}')")
    if not parts.hostname:
        raise ValueError(f"has no host (got '{_shown(value)}')")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"has an invalid port (got '{_shown(value)}')") from None
    return value.rstrip("/")


HttpsUrl = Annotated[str, AfterValidator(_https_url)]


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _https_or_loopback_http(value: str, what: str) -> str:
    """An https:// URL, or an http:// one to a loopback address only: no secret or command
    crosses a network in clear text."""
    parts = urlsplit(value)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"may be http:// only on {what} (got '{_shown(value)}')")
    if parts.scheme == "http":
        return value.rstrip("/")
    return _https_url(value)


def _generateclient_url(value: str) -> str:
    """Hermod's generateclient page is served over plain HTTP on the Hermod host itself (vendor),
    so this one URL may be http://, but only to a loopback address: no key crosses a network
    in clear text."""
    parts = urlsplit(value)
    if not parts.path.rstrip("/").endswith("/util/generateclient"):
        raise ValueError(
            f"must end with /util/generateclient, the client id follows (got '{_shown(value)}')"
        )
    return _https_or_loopback_http(value, "the Hermod host itself")


GenerateClientUrl = Annotated[str, AfterValidator(_generateclient_url)]


def _refresh_url(value: str, info: ValidationInfo) -> str:
    """The URL that makes Hermod apply application.yml: https://, http:// on loopback only, as
    for the generateclient page; `{lab_hermod}` stands for the lab Hermod's REST base (lab sites
    only), which the lab fills in once it knows its port."""
    if value.startswith(LAB_HERMOD_PLACEHOLDER):
        if (info.context or {}).get("lab_state") is None:
            raise ValueError(f"uses {LAB_HERMOD_PLACEHOLDER} but the site's target is not the lab")
        rest = value.removeprefix(LAB_HERMOD_PLACEHOLDER)
        if not rest.startswith("/"):
            raise ValueError(
                f"must go on with a path after {LAB_HERMOD_PLACEHOLDER} (got '{_shown(value)}')"
            )
        return value
    return _https_or_loopback_http(value, "the Hermod host itself")


RefreshUrl = Annotated[str, AfterValidator(_refresh_url)]


def _ping_url(value: str, info: ValidationInfo) -> str:
    """CM's ping endpoint, for a CM that offers one (CM's REST API is not public; the lab CM has
    its own): an https:// URL, or `{lab_cm}` standing for the lab CM's base URL (lab sites only),
    which the lab fills in once it knows its port."""
    if value.startswith(LAB_CM_PLACEHOLDER):
        if (info.context or {}).get("lab_state") is None:
            raise ValueError(f"uses {LAB_CM_PLACEHOLDER} but the site's target is not the lab")
        if not value.removeprefix(LAB_CM_PLACEHOLDER).startswith("/"):
            raise ValueError(
                f"must go on with a path after {LAB_CM_PLACEHOLDER} (got '{_shown(value)}')"
            )
        return value
    return _https_url(value)


PingUrl = Annotated[str, AfterValidator(_ping_url)]

COMMAND_TYPE_PLACEHOLDER = "<type>"
# What Hermod appends to a client's callback-url: inferred from the API overview, which lists the
# callbacks as POST /rest/callback/{provision,certificate,authenticate,sign,ping} (docs/vendor.md).
DEFAULT_CALLBACK_SUFFIX = "/callback/<type>"
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def _callback_suffix(value: str) -> str:
    if value.count(COMMAND_TYPE_PLACEHOLDER) != 1:
        raise ValueError(
            f"must hold {COMMAND_TYPE_PLACEHOLDER} once, where the command type goes "
            f"(got '{_shown(value)}')"
        )
    segments = value.replace(COMMAND_TYPE_PLACEHOLDER, "type").split("/")
    if segments[0] or any(
        not _PATH_SEGMENT.fullmatch(part) or part in (".", "..") for part in segments[1:]
    ):
        raise ValueError(
            "must be a URL path such as '/callback/<type>': '/' first, then segments of "
            f"letters, digits, '.', '_', '~' or '-' (got '{_shown(value)}')"
        )
    return value


CallbackSuffix = Annotated[str, AfterValidator(_callback_suffix)]


def _refresh_command(value: Any) -> Any:
    """An argument list, run without a shell: a string would need a shell to split it."""
    if isinstance(value, str):
        raise ValueError(
            'must be an argument list such as ["systemctl", "reload", "hermod"], run without a '
            "shell (got a string)"
        )
    if isinstance(value, list) and not value:
        raise ValueError("must name the program to run (got an empty list)")
    if isinstance(value, list) and isinstance(value[0], str) and not value[0].strip():
        raise ValueError("must name the program to run first (got an empty program name)")
    return value


RefreshCommand = Annotated[list[str], BeforeValidator(_refresh_command)]


def _site_path(value: str, info: ValidationInfo) -> Path:
    """A path from the site file: `{lab_state}` expanded, relative to the site file's folder,
    `..` resolved; what the file wrote is kept in the context's "written" for messages."""
    context = info.context or {}
    written = value
    if LAB_STATE_PLACEHOLDER in value:
        lab_state = context.get("lab_state")
        if lab_state is None:
            raise ValueError(f"uses {LAB_STATE_PLACEHOLDER} but the site's target is not the lab")
        value = value.replace(LAB_STATE_PLACEHOLDER, str(lab_state))
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(context.get("base", ".")) / path
    path = Path(os.path.normpath(path))
    if "written" in context:
        context["written"][str(path)] = written
    return path


SitePath = Annotated[str, AfterValidator(_site_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """`{ env = "VAR" }`, `{ file = "path" }` or `{ file = "path", key = "name" }`."""

    env: str | None = None
    file: SitePath | None = None
    key: str | None = None
    _secret: Secret | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                'a secret is { env = "VAR" }, { file = "path" } or { file = "path", key = "name" }'
            )
        if self.key is not None and self.file is None:
            raise ValueError("'key' is only valid together with 'file'")
        return self

    @property
    def source(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.key is not None:
            return f"key '{self.key}' of {self.file}"
        return f"file {self.file}"

    def get(self) -> Secret:
        """The resolved secret; `resolve_site()` must have run."""
        if self._secret is None:
            raise RuntimeError(f"the secret from {self.source} was not resolved")
        return self._secret


class _TlsTarget(_Model):
    ca_bundle: SitePath | None = None
    server_name: str | None = None


class IdmSection(_TlsTarget):
    admin_url: HttpsUrl | None = None
    operator_url: HttpsUrl | None = None
    tenant_id: int = Field(default=1, ge=1)
    admin_user: str = "admin"
    default_password: str = "admin"  # noqa: S105 - the public vendor default, not a secret
    admin_password: SecretRef
    admin_api: Literal["contract", "none"] = "contract"
    probe_default_password: bool | None = None


class PackageSection(_Model):
    path: SitePath | None = None
    name: str = "SharedCredentials"
    version: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class CertificateManagerSection(_TlsTarget):
    ca_name: str = "Smart ID Certificate Manager"
    description: str = "Smart ID Certificate Manager"
    url: HttpsUrl | None = None
    # A CM that answers a ping naming the officer (the lab CM does); without it, CONN-004 proves
    # the officer certificate by the mutual-TLS handshake and a first read at `url`.
    ping_url: PingUrl | None = None
    officer_keystore: SitePath | None = None
    officer_keystore_password: SecretRef | None = None
    trust_certs: list[SitePath] = Field(default_factory=list)
    certificate_types: list[str] = Field(default_factory=list)
    connection_zip: SitePath | None = None
    pkcs12_encryption: Literal["aes", "legacy"] = "aes"

    @model_validator(mode="after")
    def _keystore_with_password(self) -> CertificateManagerSection:
        if self.officer_keystore is not None and self.officer_keystore_password is None:
            raise ValueError("'officer_keystore' needs 'officer_keystore_password'")
        return self


class MessagingSection(_TlsTarget):
    url: HttpsUrl | None = None
    server: str = "Smart ID Messaging"
    client_id: str = Field(default="idm", pattern=r"^[A-Za-z0-9._-]+$")
    key: SecretRef | None = None
    lifespan: int = Field(default=300, gt=0)
    callback_url: HttpsUrl | None = None
    hermod_user: str = "hermod"
    hermod_password: SecretRef
    group: str | None = None
    application_yml: SitePath | None = None
    # Hermod's generateclient page, without the client id; without it the key is made locally.
    generateclient_url: GenerateClientUrl | None = None
    # How setup makes Hermod apply application.yml after writing it: a command (no shell) or a
    # URL to POST; with neither, the refresh is a manual step.
    refresh_command: RefreshCommand | None = None
    refresh_url: RefreshUrl | None = None
    refresh_timeout: float = Field(default=60.0, gt=0, le=3600)
    # What Hermod appends to callback-url; <type> is the command type (ping, provision, ...).
    callback_suffix: CallbackSuffix = DEFAULT_CALLBACK_SUFFIX

    @model_validator(mode="after")
    def _one_refresh(self) -> MessagingSection:
        if self.refresh_command is not None and self.refresh_url is not None:
            raise ValueError(
                "'refresh_command' and 'refresh_url' are two ways to refresh Hermod: give one"
            )
        return self

    def callback_endpoint(self, command_type: str) -> str | None:
        """Where Hermod posts the callback of a command of this type: callback_url + suffix."""
        if self.callback_url is None:
            return None
        suffix = self.callback_suffix.replace(COMMAND_TYPE_PLACEHOLDER, command_type)
        return self.callback_url.rstrip("/") + suffix


class Binding(_Model):
    process: str
    task: str
    data_pool: str
    sub_process: str

    @property
    def id(self) -> str:
        return f"{self.process}/{self.task}"


def _guide_bindings() -> list[Binding]:
    bindings = []
    for verb in ("Deactivate", "Reactivate", "Lock"):
        process = f"{verb} user"
        bindings.append(
            Binding(
                process=process,
                task=f"{verb} related credentials",
                data_pool="Batch order",
                sub_process="set credential status",
            )
        )
        bindings.append(
            Binding(
                process=process,
                task="Load related credentials",
                data_pool="Credentials",
                sub_process="load credential(s)",
            )
        )
    return bindings


class BindingEntry(_Model):
    """One `[[processes.bindings]]` entry: it overrides the guide's binding of its (process,
    task), keeping the default's value of a key it leaves out, or adds a binding the guide does
    not have (then `data_pool` and `sub_process` are required); `enabled = false` drops the
    default of its (process, task)."""

    process: str
    task: str
    data_pool: str | None = None
    sub_process: str | None = None
    enabled: bool = True

    @property
    def id(self) -> str:
        return f"{self.process}/{self.task}"


_GUIDE_IDS = frozenset(binding.id for binding in _guide_bindings())


class ProcessesSection(_Model):
    bindings: list[BindingEntry] = Field(default_factory=list)

    @field_validator("bindings")
    @classmethod
    def _mergeable(cls, entries: list[BindingEntry]) -> list[BindingEntry]:
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise ValueError(
                    f"process '{entry.process}' task '{entry.task}' is listed twice: give one "
                    "entry per (process, task)"
                )
            seen.add(entry.id)
            if entry.id in _GUIDE_IDS or not entry.enabled:
                continue
            missing = [k for k in ("data_pool", "sub_process") if getattr(entry, k) is None]
            if missing:
                raise ValueError(
                    f"process '{entry.process}' task '{entry.task}' is not one of the guide's "
                    f"six bindings, so it needs {' and '.join(repr(k) for k in missing)}"
                )
        return entries

    def merged(self) -> list[Binding]:
        """The guide's six bindings with this section's entries applied, in the guide's order,
        then the bindings it adds in the file's order."""
        entries = {entry.id: entry for entry in self.bindings}
        result: list[Binding] = []
        for default in _guide_bindings():
            entry = entries.pop(default.id, None)
            if entry is None:
                result.append(default)
            elif entry.enabled:
                result.append(_apply(default, entry))
        for entry in entries.values():
            if entry.enabled and entry.data_pool is not None and entry.sub_process is not None:
                result.append(_binding(entry, entry.data_pool, entry.sub_process))
        return result


def _apply(default: Binding, entry: BindingEntry) -> Binding:
    return _binding(
        entry,
        entry.data_pool if entry.data_pool is not None else default.data_pool,
        entry.sub_process if entry.sub_process is not None else default.sub_process,
    )


def _binding(entry: BindingEntry, data_pool: str, sub_process: str) -> Binding:
    return Binding(
        process=entry.process, task=entry.task, data_pool=data_pool, sub_process=sub_process
    )


# An OpenSSL cipher string naming a family of suites ("kRSA", "ECDHE+SHA1:ECDHE+SHA256"); the
# probe appends its own security level, so the string must not set one.
CipherFamily = Annotated[str, Field(pattern=r"^[A-Za-z0-9+\-!:_]+$")]


class TlsPolicy(_Model):
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    expiry_warn_days: int = Field(default=30, ge=0)
    expiry_fail_days: int = Field(default=7, ge=0)
    min_rsa_bits: int = Field(default=2048, ge=1024)
    min_ec_bits: int = Field(default=256, ge=160)
    forbidden_signature_hashes: list[str] = Field(default_factory=lambda: ["md5", "sha1"])
    # TLS 1.2 cipher suite families as OpenSSL cipher strings (TLS-007), each probed on its own.
    # Forbidden by default: what Mozilla's "intermediate" profile leaves out.
    forbidden_ciphers: list[CipherFamily] = Field(
        default_factory=lambda: ["kRSA", "3DES", "RC4", "NULL", "EXPORT", "aNULL"]
    )
    # A warning unless forbidden: CBC suites with forward secrecy, which Java's defaults (and so
    # a default Tomcat) still offer. (OpenSSL counts ECDHE's NULL suites under SHA1: NULL is
    # forbidden above, so it is left out here rather than found twice.)
    warn_ciphers: list[CipherFamily] = Field(
        default_factory=lambda: [
            "ECDHE+SHA1:ECDHE+SHA256:ECDHE+SHA384:!eNULL",
            "DHE+SHA1:DHE+SHA256:!eNULL",
        ]
    )
    # Strict-Transport-Security max-age the browser UIs (IDM Admin, IDM Operator) must send.
    hsts_min_age: int = Field(default=15552000, ge=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    # Revocation of the presented chain (TLS-009): "require" fails a certificate whose status
    # cannot be learnt, "prefer" warns, "off" skips the check.
    revocation: Literal["require", "prefer", "off"] = "prefer"
    # An OCSP answer produced longer ago than this is stale, whatever its nextUpdate says.
    ocsp_max_age_hours: int = Field(default=168, ge=1)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> TlsPolicy:
        if self.expiry_warn_days < self.expiry_fail_days:
            raise ValueError("'expiry_warn_days' must not be smaller than 'expiry_fail_days'")
        return self

    @property
    def cipher_families(self) -> tuple[str, ...]:
        """Every family TLS-007 probes: the forbidden ones, then the warned ones not forbidden."""
        return tuple(dict.fromkeys(self.forbidden_ciphers)) + self.cipher_families_apart

    @property
    def cipher_families_apart(self) -> tuple[str, ...]:
        """The families TLS-007 offers each in a handshake of its own, beside the others: the
        warned ones, which servers often take (a default Tomcat takes ECDHE with CBC). Offered
        with the forbidden ones, a suite taken from them would need a second offer, one round
        trip after the first, to learn that the forbidden ones are refused."""
        forbidden = set(self.forbidden_ciphers)
        return tuple(w for w in dict.fromkeys(self.warn_ciphers) if w not in forbidden)


class Endpoint(_TlsTarget):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    url: HttpsUrl
    client_cert: SitePath | None = None
    client_key: SitePath | None = None
    client_auth: Literal["required", "none"] = "none"

    @model_validator(mode="after")
    def _cert_with_key(self) -> Endpoint:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("'client_cert' and 'client_key' go together")
        return self


class Waiver(_Model):
    """A known failure accepted until a date: of every case of a check (`check = "TLS-005"`), or
    of one case (`check = "TLS-005[hermod]"`: the case's test id in brackets)."""

    check: str = Field(pattern=r"^[A-Z]+-\d{3}(\[[^\[\]]+\])?$")
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    until: date

    @property
    def check_id(self) -> str:
        """The check it waives: `TLS-005` for both forms."""
        return self.check.partition("[")[0]

    @property
    def case(self) -> str | None:
        """The one case it waives, or None for every case of its check."""
        _, bracket, rest = self.check.partition("[")
        return rest.removesuffix("]") if bracket else None


class LabSection(_Model):
    """How the embedded lab plays the target (sites with target = "lab" only)."""

    # Serve only what Nexus documents: the admin contract answers 404, as a real IDM's does.
    documented_only: bool = False


class Site(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    target: Literal["lab", "remote"]
    idm: IdmSection | None = None
    package: PackageSection | None = None
    certificate_manager: CertificateManagerSection | None = None
    messaging: MessagingSection | None = None
    processes: ProcessesSection | None = None
    lab: LabSection | None = None
    tls: TlsPolicy = Field(default_factory=TlsPolicy)
    endpoints: list[Endpoint] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)
    _path: Path = PrivateAttr(default=Path("site.toml"))
    # The paths of the file as written, by the normalized path they became.
    _written: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("endpoints")
    @classmethod
    def _unique_endpoint_names(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        seen: set[str] = set()
        for endpoint in endpoints:
            if endpoint.name in seen:
                raise ValueError(f"endpoint name '{endpoint.name}' appears twice")
            seen.add(endpoint.name)
        return endpoints

    @property
    def path(self) -> Path:
        return self._path

    def shown(self, path: Path | str) -> str:
        """A path of the site as messages show it: normalized, and as the file wrote it where
        that differs (a relative path, `{lab_state}`, `..`)."""
        normalized = shown_path(path)
        written = self._written.get(str(path))
        # A path written relative to the site file's folder, without `..`, says nothing more.
        if written is None or normalized == written or normalized.endswith(f"/{written}"):
            return normalized
        return f"{normalized} (written as '{written}')"

    @property
    def bindings(self) -> list[Binding]:
        """The task bindings to make: the guide's six with the site's entries applied."""
        return (self.processes or ProcessesSection()).merged()

    @property
    def probe_default_password(self) -> bool:
        if self.idm is None:
            return False
        if self.idm.probe_default_password is not None:
            return self.idm.probe_default_password
        return self.target == "lab"

    def secret_refs(self) -> dict[str, SecretRef]:
        """Every secret reference of the site, by its dotted key."""
        refs: dict[str, SecretRef] = {}
        for section_name in ("idm", "certificate_manager", "messaging"):
            section = getattr(self, section_name)
            if section is None:
                continue
            for field_name in type(section).model_fields:
                value = getattr(section, field_name)
                if isinstance(value, SecretRef):
                    refs[f"{section_name}.{field_name}"] = value
        return refs

    def secrets(self) -> list[Secret]:
        """Every resolved secret of the site."""
        return [ref.get() for ref in self.secret_refs().values()]


_REMOTE_REQUIRED = {
    "idm": ("admin_url", "operator_url"),
    "certificate_manager": ("url",),
    "messaging": ("url", "callback_url"),
}


def _remote_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """What a remote site must say that a lab site may leave to the lab, checked on the raw
    document so that it is reported together with every other problem."""
    if data.get("target") != "remote":
        return []
    problems = []
    if "lab" in data:
        problems.append(("lab", 'only a site with target = "lab" has a [lab] section'))
    for section_name, keys in _REMOTE_REQUIRED.items():
        section = data.get(section_name)
        if isinstance(section, dict):
            problems.extend(
                (f"{section_name}.{key}", 'required when target is "remote"')
                for key in keys
                if key not in section
            )
    return problems


def shown_path(path: Path | str) -> str:
    """A path as messages show it: absolute, with `..` and `.` resolved (symbolic links are
    left as written, so that the path is the one the administrator recognises)."""
    return os.path.normpath(os.path.abspath(path))


def parse_site(path: Path, lab_state: Path | None = None) -> Site:
    """The validated site model of the TOML file at `path` (secrets not yet resolved); a
    SiteError names every problem the file has, one line each."""
    shown = shown_path(path)
    try:
        data = load_toml(read_text(path))
    except FileNotFoundError:
        raise SiteError(shown, None, "the site file does not exist") from None
    except OSError as exc:
        raise SiteError(shown, None, f"the site file cannot be read ({exc.strerror})") from None
    except InputRefused as exc:
        raise SiteError(shown, exc.key, f"the site file {exc.problem}") from None
    data.setdefault("name", path.stem)
    written: dict[str, str] = {}
    context = {"base": path.resolve().parent, "lab_state": lab_state, "written": written}
    # (dotted key, problem): the key orders the problems by section when the sentence names it.
    found = [(key, SiteError(shown, key, problem)) for key, problem in _remote_problems(data)]
    site: Site | None = None
    try:
        site = Site.model_validate(data, context=context)
    except ValidationError as exc:
        for error in exc.errors():
            key, problem = describe(error, Site)
            found.append((dotted_key(error["loc"]), SiteError(shown, key, problem)))
    if found:
        found.sort(key=lambda item: _section_order(list(data), item[0]))
        raise SiteError.of([problem for _, problem in found]) from None
    assert site is not None
    site._path = Path(shown)
    site._written = written
    return site


def _section_order(sections: list[str], key: str) -> int:
    """Where the key's section stands in the file (TOML keeps the order); 0 for none."""
    head = key.split(".", 1)[0].split("[", 1)[0]
    return sections.index(head) + 1 if head in sections else 0


def _read_secret(ref: SecretRef, key: str, site: Site) -> str:
    shown = str(site.path)
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretError(shown, key, f"environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    file = Path(ref.file)
    named = f"secret file {site.shown(ref.file)}"
    try:
        text = read_text(file)
    except FileNotFoundError:
        raise SecretError(shown, key, f"{named} does not exist") from None
    except OSError as exc:
        raise SecretError(shown, key, f"{named} cannot be read ({exc.strerror})") from None
    except InputRefused as exc:
        raise SecretError(shown, key, f"{named} {exc.problem}") from None
    if ref.key is None:
        return text.strip()
    kind = "TOML" if file.suffix == ".toml" else "JSON"
    try:
        document = load_toml(text) if kind == "TOML" else load_json(text)
    except InputRefused as exc:
        # Only the problem and the place: a parser's own message may quote the secret.
        toml_syntax = kind == "TOML" and exc.problem.startswith("is not valid")
        problem = "is not valid TOML" if toml_syntax else exc.problem
        where = f" under key '{exc.key}'" if exc.key else ""
        raise SecretError(shown, key, f"{named}{where} {problem}") from None
    value = document.get(ref.key) if isinstance(document, dict) else None
    if not isinstance(value, str):
        raise SecretError(shown, key, f"{named} has no string value under key '{ref.key}'")
    return value


def _path_problems(site: Site) -> list[SiteError]:
    shown = str(site.path)
    checks: list[tuple[str, Any]] = []
    for section_name in ("idm", "package", "certificate_manager", "messaging"):
        section = getattr(site, section_name)
        if section is None:
            continue
        for field_name in (
            "ca_bundle",
            "path",
            "officer_keystore",
            "connection_zip",
            "application_yml",
            "trust_certs",
        ):
            if field_name in type(section).model_fields:
                checks.append((f"{section_name}.{field_name}", getattr(section, field_name)))
    for index, endpoint in enumerate(site.endpoints):
        for field_name in ("ca_bundle", "client_cert", "client_key"):
            checks.append((f"endpoints[{index}].{field_name}", getattr(endpoint, field_name)))
    problems = []
    for key, value in checks:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            if not Path(item).is_file():
                problems.append(SiteError(shown, key, f"file {site.shown(item)} does not exist"))
                continue
            problem = _pem_problem(Path(item), key.rsplit(".", 1)[-1])
            if problem is not None:
                problems.append(SiteError(shown, key, f"file {site.shown(item)} {problem}"))
    return problems


# Keys whose files the suite hands to TLS as PEM; a wrong file found here is one sentence naming
# the key, rather than a failed handshake per check later.
_PEM_CERTIFICATES = frozenset({"ca_bundle", "trust_certs", "client_cert"})


def _pem_problem(path: Path, field_name: str) -> str | None:
    """Why the file named by `field_name` is not the PEM it must be, or None."""
    if field_name not in _PEM_CERTIFICATES and field_name != "client_key":
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if field_name == "client_key":
        # The key is not parsed here: it may be encrypted, and its content is a secret.
        return None if b"PRIVATE KEY-----" in data else "is not a PEM private key"
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        return "is not a PEM certificate bundle"
    return None


def resolve_site(site: Site) -> Site:
    """Resolve every secret reference and check every named file; register secrets for masking.
    A SiteError names every file and secret that cannot be used, one line each."""
    problems = _path_problems(site)
    shown = str(site.path)
    for key, ref in site.secret_refs().items():
        try:
            value = _read_secret(ref, key, site)
        except SecretError as exc:
            problems.append(exc)
            continue
        if len(value) < MIN_SECRET_LENGTH:
            problems.append(
                SecretError(
                    shown,
                    key,
                    f"the secret from {ref.source} is shorter than {MIN_SECRET_LENGTH} characters",
                )
            )
            continue
        secret = Secret(value, ref.source)
        MASKER.register(secret)
        ref._secret = secret
    if problems:
        raise SiteError.of(problems)
    return site


def load_site(path: Path, lab_state: Path | None = None) -> Site:
    """Parse and resolve in one call, for targets that need no preparation between the two."""
    return resolve_site(parse_site(path, lab_state))
