"""The project's config loader: Kedro's ``OmegaConfigLoader``, with ``--params`` that patch a block
the run's environment does not define instead of replacing it.

Kedro 1.7 merges the runtime parameters into the base parameters *and* into the environment's, then
lets each top-level block of the environment replace the base's. A block that only ``conf/base``
defines then comes out of ``kedro run --env test --params images.image_size=32`` as
``{image_size: 32}`` alone, its other keys lost. Here such a block keeps the base's keys with the
override laid over them; blocks the environment does define behave as in Kedro.
"""

from __future__ import annotations

from typing import Any

from kedro.config import OmegaConfigLoader


class ConfigLoader(OmegaConfigLoader):
    def _merge_configs(self, config: dict[str, Any], env_config: dict[str, Any], key: str, env_path: str) -> Any:
        if key == "parameters" and self.runtime_params:
            _, env_files, *_ = self._read_raw_config(key)
            defined = {name for file_config in env_files.values() for name in file_config}
            # A block only the runtime parameters put in the environment's config: the base's (which has them too).
            env_config = {name: value for name, value in env_config.items() if name in defined or name not in config}
        return super()._merge_configs(config, env_config, key, env_path)
