"""A tool module that does not import (for the config-error test)."""

import a_module_that_does_not_exist  # noqa: F401
