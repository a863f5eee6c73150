"""The write path: commands with typed results, the runner of their handler table, the group-
commit writer.
"""
