"""Protocol-faithful emulators of the fal queue API and the Gemini API.

They are plain aiohttp applications with no Django dependency, served on loopback
by ``manage.py emulate`` (and by ``make run`` when no provider keys are set) and
started on free ports by the tests. The stock SDKs talk to them over real HTTP.
"""
