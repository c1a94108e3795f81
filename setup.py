"""Ships hf_transfer_launch.pth into site-packages, for wheels and for editable installs (`pip install -e .`).

Everything else about the distribution is in pyproject.toml. The .pth file makes `accelerate launch` exit 2 with the
recipe's one line on a user error (hf_transfer/launch_hook.py); a .pth file must sit at the top of site-packages,
which setuptools' package data cannot reach, hence these two commands.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "hf_transfer_launch.pth"


class BuildPyWithPth(build_py):
    """Wheels: the .pth file at the root of the wheel, which installers put in site-packages."""

    def run(self):
        super().run()
        if not self.editable_mode:
            self.copy_file(PTH, str(Path(self.build_lib, PTH)), preserve_mode=False)


class EditableWheelWithPth(editable_wheel):
    """Editable installs: the .pth file among the files of the editable wheel, so its RECORD lists it."""

    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        files, mapping = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        self.copy_file(PTH, str(Path(unpacked_wheel, PTH)), preserve_mode=False)
        return files, mapping


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
