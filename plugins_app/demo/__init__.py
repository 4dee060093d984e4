"""The demo workspace `make run` starts with (`manage.py seed_demo`).

Not a Django app and no models: it builds ordinary workspace data through the
apps' own services, which is why it sits above them all (it registers plugins
and uploads hosted code). `seed` holds the users, projects and plugins,
`images` the pictures taken from scikit-image, `invoices` the generated invoice
documents, `reviewed` the tasks seeded as already labeled and accepted.
"""
