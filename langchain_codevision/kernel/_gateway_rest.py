"""The Kernel Gateway's REST API: create, inspect, interrupt, restart and delete kernels.

Every call is bounded by ``timeout``; failures become :class:`GatewayError` with words a
user can act on (no gateway at that address, a refused token, an unknown kernel).
"""

from __future__ import annotations

from typing import Any

import httpx

from .session import KernelStartError

__all__ = ["GatewayAuthError", "GatewayError", "GatewayRest"]


class GatewayError(KernelStartError):
    """The gateway could not be reached or refused a request (a kernel start error)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GatewayAuthError(GatewayError):
    """The gateway refused the token (HTTP 401/403)."""


class GatewayRest:
    """Async client of one gateway's ``/api/kernels`` endpoints."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise GatewayError(f"the gateway at {self.base_url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"no Kernel Gateway answers at {self.base_url} ({type(exc).__name__}: {exc}); "
                "is `jupyter kernelgateway` running there?"
            ) from exc
        if response.status_code == 403 and "Resource Limit" in response.text:
            raise GatewayError(
                f"the gateway at {self.base_url} already runs its maximum number of kernels "
                "(--KernelGatewayApp.max_kernels)",
                403,
            )
        refusal = _refusal(response)
        if response.status_code == 403 and "not authorized to start kernel" in refusal:
            raise GatewayError(
                f"the gateway at {self.base_url} refused to start a kernel for this user: "
                f"{refusal} (Enterprise Gateway refuses its unauthorized_users, root by "
                "default: pass env={'KERNEL_USERNAME': 'some-user'} or set KERNEL_USERNAME)",
                403,
            )
        if response.status_code in (401, 403):
            raise GatewayAuthError(
                f"the gateway at {self.base_url} refused the token (HTTP "
                f"{response.status_code}); pass token= or set CODEVISION_GATEWAY_TOKEN",
                response.status_code,
            )
        if response.status_code >= 400:
            detail = response.text[:300].strip()
            raise GatewayError(
                f"{method} {path} failed with HTTP {response.status_code}: {detail}",
                response.status_code,
            )
        return response

    async def create(self, name: str | None, env: dict[str, str]) -> dict[str, Any]:
        """Start a kernel (the gateway's default kernelspec unless ``name``)."""
        body: dict[str, Any] = {}
        if name:
            body["name"] = name
        if env:
            body["env"] = env
        model = (await self._call("POST", "/api/kernels", json=body)).json()
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            raise GatewayError(f"the gateway answered an unknown kernel model: {model!r:.200}")
        return model

    async def get(self, kernel_id: str) -> dict[str, Any] | None:
        """The kernel's model, or ``None`` when the gateway no longer has it."""
        try:
            return (await self._call("GET", f"/api/kernels/{kernel_id}")).json()
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise

    async def interrupt(self, kernel_id: str) -> None:
        """Interrupt the running cell (signal or message, as the kernelspec says)."""
        await self._call("POST", f"/api/kernels/{kernel_id}/interrupt")

    async def restart(self, kernel_id: str) -> None:
        """Restart the kernel process (the gateway keeps its id)."""
        await self._call("POST", f"/api/kernels/{kernel_id}/restart", json={})

    async def delete(self, kernel_id: str) -> None:
        """Shut the kernel down (a kernel already gone counts as deleted)."""
        try:
            await self._call("DELETE", f"/api/kernels/{kernel_id}")
        except GatewayError as exc:
            if exc.status != 404:
                raise

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()


def _refusal(response: httpx.Response) -> str:
    """The reason a gateway gives in its JSON error body (``""`` when it gives none)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return str(body.get("reason") or body.get("message") or "")[:300]
