"""Write a realistic synthetic export of the platform: the four CSV files, for any number of users.

A survey of how the users like to learn (user_answers.csv and questions.csv) is added on request.

Users are drawn from latent topics (groups of related course tags, interest tags and assessment
tags): every user gets a sparse mixture of one to three topics, and their interests, course views
and assessments are all drawn from that mixture plus some noise, so similar users really exist.

The modules follow the data: `vocabulary` (the built-in words) and `topics` shape the `catalogue`,
`sampling` draws from it, `users` draws each chunk of users' rows, `survey` their answers to the
survey, and `writer` writes the files.
"""

from generator.synthetic.writer import synthesize

__all__ = ["synthesize"]
