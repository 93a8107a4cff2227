"""Field types that the store kinds' specs share with the rest of the inventory's model."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from pydantic import AfterValidator

from secretops import names

EnvVar = Annotated[str, AfterValidator(names.env_var)]
SecretName = Annotated[str, AfterValidator(partial(names.dns_subdomain, what="Secret name"))]
ExternalSecretName = Annotated[
    str, AfterValidator(partial(names.dns_label, what="ExternalSecret name"))
]
