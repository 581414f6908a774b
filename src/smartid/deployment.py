"""One site as the suite sees it: the site file plus the site state, and the clients built from
them. Setup steps and verify checks both start here, so they agree on which password, key and
certificate belongs to which component."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from smartid import errors
from smartid.hermod import HermodClient, HermodConfigError, parse_clients
from smartid.hermod.clients import read_config
from smartid.hermod.refresh import Refresh
from smartid.http import Timeouts
from smartid.idm import IdmClient
from smartid.masking import MASKER, Secret
from smartid.site import Site
from smartid.state import SiteState

__all__ = ["HERMOD_KEY_FILE", "Deployment"]

HERMOD_KEY_FILE = "hermod-client.key"


@dataclass
class Deployment:
    site: Site
    state: SiteState
    # application.yml's text as last parsed, and its clients: several checks read it in one run
    # (parsing costs ~10 ms, reading microseconds), and setup rewrites it between reads.
    _hermod_clients: tuple[str, list[HermodClient]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # Whether IDM Admin accepts the site's password (False: the default one), once asked.
    _site_password_works: bool | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(connect=self.site.tls.connect_timeout, read=self.site.tls.read_timeout)

    # --- IDM ----------------------------------------------------------------------------------

    @property
    def uses_contract(self) -> bool:
        """Whether IDM is driven through the admin contract (`admin_api = "contract"`); without
        it, only the documented interfaces are used and the UI's steps are manual."""
        idm = self.site.idm
        return idm is None or idm.admin_api == "contract"

    def idm_client(self, password: Secret | None = None) -> IdmClient:
        """IDM Admin as the site's administrator, with the site's password unless one is given."""
        idm = self.site.idm
        if idm is None or idm.admin_url is None:
            raise errors.SiteError(str(self.site.path), "idm.admin_url", "IDM is not described")
        return IdmClient(
            idm.admin_url,
            user=idm.admin_user,
            password=password or idm.admin_password.get(),
            ca_bundle=Path(idm.ca_bundle) if idm.ca_bundle else None,
            tenant=idm.tenant_id,
            timeouts=self.timeouts,
            contract=idm.admin_api == "contract",
        )

    def idm_operator_client(self) -> IdmClient | None:
        """IDM Operator's deploy API as the site's administrator, where the site gives
        `operator_url`; Operator serves no admin contract."""
        idm = self.site.idm
        if idm is None or idm.operator_url is None:
            return None
        return IdmClient(
            idm.operator_url,
            user=idm.admin_user,
            password=idm.admin_password.get(),
            ca_bundle=Path(idm.ca_bundle) if idm.ca_bundle else None,
            tenant=idm.tenant_id,
            timeouts=self.timeouts,
            contract=False,
        )

    @property
    def default_password(self) -> Secret:
        assert self.site.idm is not None
        # The vendor default is public; it is a Secret only so that clients accept it.
        return Secret(self.site.idm.default_password, "the vendor default password")

    def working_admin(self) -> tuple[IdmClient, bool]:
        """An IDM client that logs in, and whether it uses the site's (new) password.

        Which password works is asked once per run (each question is a request to IDM, without
        the contract a configuration download closed unread) and then remembered, until
        `forget_admin_login` after setup changed the password.
        Raises AuthenticationError when neither the site's password nor the default works."""
        if self._site_password_works is None:
            with self.idm_client() as site_client:
                works = site_client.login_works()
            if not works:
                with self.idm_client(self.default_password) as default_client:
                    if not default_client.login_works():
                        assert self.site.idm is not None
                        raise errors.AuthenticationError(
                            f"{self.site.idm.admin_url}",
                            401,
                            f"IDM Admin refuses user '{self.site.idm.admin_user}' with the "
                            "site's password and with the default password",
                        )
            self._site_password_works = works
        if self._site_password_works:
            return self.idm_client(), True
        return self.idm_client(self.default_password), False

    def forget_admin_login(self) -> None:
        """The admin password changed: the next `working_admin` asks IDM again."""
        self._site_password_works = None

    # --- Hermod -------------------------------------------------------------------------------

    def application_yml(self) -> Path | None:
        messaging = self.site.messaging
        return Path(messaging.application_yml) if messaging and messaging.application_yml else None

    def configured_hermod_clients(self) -> list[HermodClient]:
        path = self.application_yml()
        if path is None or not path.exists():
            return []
        return self._read_hermod_config(path)[1]

    def application_yml_text(self) -> str:
        """The text of Hermod's application.yml, found readable and valid: setup edits what
        verify judges, so both read it here and a bad file is the same sentence in both."""
        path = self.application_yml()
        assert path is not None, "the site names no application.yml"
        return self._read_hermod_config(path)[0]

    def _read_hermod_config(self, path: Path) -> tuple[str, list[HermodClient]]:
        """(text, clients) of the file; every problem with it becomes one SiteError here."""
        try:
            text = read_config(path)
            if self._hermod_clients is not None and self._hermod_clients[0] == text:
                return text, list(self._hermod_clients[1])
            clients = parse_clients(text, str(path))
        except OSError as exc:
            raise errors.SiteError(
                str(self.site.path),
                "messaging.application_yml",
                f"file {path} cannot be read ({exc.strerror})",
            ) from None
        except HermodConfigError as exc:
            raise errors.SiteError(exc.where, None, exc.problem) from None
        self._hermod_clients = (text, clients)
        return text, list(clients)

    def hermod_key(self) -> tuple[Secret | None, str]:
        """The IDM client's Hermod key and where it came from: the site, the site state or
        Hermod's application.yml; (None, "none") when none exists anywhere."""
        messaging = self.site.messaging
        assert messaging is not None
        if messaging.key is not None:
            return messaging.key.get(), "site"
        stored = self.state.read(HERMOD_KEY_FILE)
        if stored is not None:
            key = Secret(stored.decode().strip(), f"site state {HERMOD_KEY_FILE}")
            MASKER.register(key)
            return key, "site state"
        for client in self.configured_hermod_clients():
            if client.client_id == messaging.client_id:
                MASKER.register(client.key)
                return client.key, "application.yml"
        return None, "none"

    def desired_hermod_client(self, key: Secret) -> HermodClient:
        messaging = self.site.messaging
        assert messaging is not None
        assert messaging.callback_url is not None
        basic = Secret(
            f"{messaging.hermod_user}:{messaging.hermod_password.get().reveal()}",
            "callback-basic-auth",
        )
        MASKER.register(basic)
        client = HermodClient(
            client_id=messaging.client_id,
            key=key,
            callback_url=messaging.callback_url,
            callback_basic_auth=basic,
            group=messaging.group,
        )
        MASKER.register(client.api_key)
        return client

    def hermod_refresh(self) -> Refresh | None:
        """How Hermod is made to apply application.yml, as the site says; None: by hand."""
        messaging = self.site.messaging
        if messaging is None or (messaging.refresh_command is None and not messaging.refresh_url):
            return None
        return Refresh(
            command=tuple(messaging.refresh_command) if messaging.refresh_command else None,
            url=messaging.refresh_url,
            timeout=messaging.refresh_timeout,
            connect_timeout=self.site.tls.connect_timeout,
            ca_bundle=Path(messaging.ca_bundle) if messaging.ca_bundle else None,
        )
