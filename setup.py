"""Maps the design card's top-level folders to import names; the rest is in pyproject.toml."""

from setuptools import find_packages, setup

MAPPED = {"mtqa_builder": "builder", "mtqa_bench": "benchmarks"}

packages = find_packages(include=["mtqa", "mtqa.*"])
package_dir = {}
for name, folder in MAPPED.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir, include_package_data=True)
